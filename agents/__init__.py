"""streamapp's Faust agents. Registration is explicit: :func:`register` (no autodiscovery)."""

from agents.coap_sink import register

__all__ = ["register"]
