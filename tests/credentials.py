"""The Kafka users of the test broker's SASL listeners (``tests/conftest.py``'s ``broker``)."""

SASL_USER = "sink"
SASL_PASSWORD = "sink-pw-9f3"
SASL_USERS = {SASL_USER: SASL_PASSWORD}
