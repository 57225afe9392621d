"""CoAP delivery: the sender service that owns the aiocoap context."""
