"""CoAP delivery: the sender service, its endpoint pool, and the exchange layer that carries its requests."""
