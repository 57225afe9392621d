"""The Kafka side of the worker: client security (TLS, SASL) and the consumer group (docs/production.md)."""
