"""The delivery engine: a record's life from the agent's hand-over to its commit (docs/delivery-engine.md).

``engine.py`` owns it and is the only entry (``DeliveryEngine.take`` / ``revoke`` / ``stop``); inside,
``pipeline.py`` prepares a record, ``dispatch.py`` schedules its requests, ``offsets.py`` acks in offset
order, ``failures.py`` applies ``policy.py`` to a failure and ``dead_letters.py`` writes the dead-letter
topic. ``interfaces.py`` declares what the engine is handed: a ``Sender``, the ``Ack`` and ``Commit``.
"""

from streamapp.engine.engine import Assignment, DeliveryEngine

__all__ = ["Assignment", "DeliveryEngine"]
