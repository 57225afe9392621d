"""The one exception tree of streamapp.

Every error a user can cause carries enough context to find the cause without a debugger: the configuration
key, the KCQL statement and column, or the record's topic/partition/offset.
"""

from __future__ import annotations

from streamapp.records import Answer, RecordCoordinates


class StreamappError(Exception):
    """Base of every error raised on purpose by streamapp."""


class ConfigError(StreamappError):
    """A configuration value is missing, malformed or inconsistent. Names the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class KcqlError(StreamappError):
    """A KCQL statement cannot be parsed or does not make sense.

    ``statement`` is 1-based (the n-th statement of ``connect.coap.kcql``); ``line`` and ``column`` are
    1-based positions inside that statement.
    """

    def __init__(
        self, message: str, *, statement: int, line: int = 1, column: int = 1, text: str = ""
    ) -> None:
        super().__init__(f"KCQL statement {statement}, line {line}, column {column}: {message}")
        self.message = message
        self.statement = statement
        self.line = line
        self.column = column
        self.text = text


class RecordError(StreamappError):
    """An error about one record; ``str()`` names its topic/partition/offset.

    ``retriable`` tells the error policy whether trying the same record again can help.
    """

    retriable = False

    def __init__(self, where: RecordCoordinates, message: str) -> None:
        super().__init__(f"record {where}: {message}")
        self.where = where
        self.message = message


class DecodeError(RecordError):
    """The record's bytes cannot be decoded with the configured converter.

    Not retriable (the bytes will not change), except when a schema could not be fetched because the
    registry was unreachable: that record is fine and decodes once the registry is back.
    """

    def __init__(self, where: RecordCoordinates, message: str, *, retriable: bool = False) -> None:
        super().__init__(where, message)
        self.retriable = retriable


class SelectError(RecordError):
    """The decoded record does not fit the statement's field selection."""


class DeliveryError(RecordError):
    """The CoAP server did not confirm the record with a 2.xx response.

    ``code`` is the CoAP response code as text (``4.04``) when the server answered, else ``None``
    (timeout, network error), and ``answer`` the whole response then (for a reply topic).
    ``retriable`` tells the error policy whether resending can help.
    """

    def __init__(
        self,
        where: RecordCoordinates,
        message: str,
        *,
        resource: str,
        code: str | None = None,
        retriable: bool,
        answer: Answer | None = None,
    ) -> None:
        super().__init__(where, message)
        self.resource = resource
        self.code = code
        self.retriable = retriable
        self.answer = answer


class WorkerStopped(StreamappError):
    """The error policy stopped the worker; the message says which record and why."""
