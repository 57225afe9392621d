"""What happens to a record that cannot be delivered, decoded or selected (``connect.coap.error.policy``).

So far only THROW: the worker stops with a non-zero exit, the record is not acked, and on restart it is
read again. Offsets of records delivered before it are committed first.
"""

from __future__ import annotations

from streamapp.errors import DeliveryError, RecordCoordinates, RecordError, StreamappError
from streamapp.logs import get_logger

log = get_logger("streamapp.policy")


class WorkerStopped(StreamappError):
    """The error policy stopped the worker; the message says which record and why."""


def throw(error: BaseException, where: RecordCoordinates) -> WorkerStopped:
    """Log the failure with the record's coordinates and build the reason the worker stops with."""
    fields: dict[str, object] = {
        "topic": where.topic,
        "partition": where.partition,
        "offset": where.offset,
        "error_class": type(error).__name__,
    }
    if isinstance(error, RecordError):
        fields["retriable"] = error.retriable  # e.g. a schema registry that was down: the record is fine
    if isinstance(error, DeliveryError):
        fields.update(resource=error.resource, code=error.code)
    reason = error if isinstance(error, StreamappError) else f"{type(error).__name__}: {error}"
    log.error(f"stopping the worker (connect.coap.error.policy=THROW): {reason}", **fields)
    return WorkerStopped(
        f"THROW: {reason}. Record {where} was not committed: it is read again when the worker restarts."
    )
