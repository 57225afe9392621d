"""The error policy applied to one failure: a request that was not delivered (one record, or a batch of
them) or a record that could not be prepared. Decides, logs, counts and dead-letters; the dispatcher
(``dispatch.py``) holds, resends or releases the records as told.

Every failure line carries the record's topic, partition and offset, the statement, and for a delivery the
resource and the response code (``record_fields``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from streamapp.engine.dead_letters import DeadLetters
from streamapp.engine.policy import Decision, ErrorPolicy, reason, record_fields, stopping
from streamapp.engine.stats import Stats
from streamapp.errors import WorkerStopped
from streamapp.logs import get_logger
from streamapp.records import RawRecord

log = get_logger(__name__)


#: How much of a record's key and value a failure line shows (``errors.log.include.messages``).
MESSAGE_TEXT_LIMIT = 1024


def message_text(data: bytes | None) -> str | None:
    """A key or value for a log line: UTF-8 text (undecodable bytes escaped), clipped."""
    if data is None:
        return None
    text = data[:MESSAGE_TEXT_LIMIT].decode("utf-8", errors="backslashreplace")
    return text + f"... ({len(data)} bytes)" if len(data) > MESSAGE_TEXT_LIMIT else text


class Failures:
    def __init__(
        self,
        policy: ErrorPolicy,
        stats: Stats,
        dead_letters: DeadLetters | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        *,
        log_records: bool = True,
        include_messages: bool = False,
    ) -> None:
        """``log_records``: a line for every record skipped or dead-lettered (``errors.log.enable``);
        ``include_messages``: its key and value in its lines (``errors.log.include.messages``)."""
        self.policy = policy
        self.stats = stats
        self.dead_letters = dead_letters
        self._sleep = sleep
        self._log_records = log_records
        self._include_messages = include_messages

    def _fields(
        self, error: BaseException, raw: RawRecord, statement: int | None, statements: tuple[int, ...] = ()
    ) -> dict[str, object]:
        # A record that failed before any statement (undecodable) names the statements it was read for.
        where_in: dict[str, object] = (
            {"statement": statement} if statement is not None else {"statements": statements}
        )
        fields = {**record_fields(error, raw.where), **where_in}
        if self._include_messages:
            fields["record_key"] = message_text(raw.key)
            fields["record_value"] = message_text(raw.value)
        return fields

    async def handle(
        self,
        error: BaseException,
        records: Sequence[RawRecord],
        statement: int | None,
        attempts: int,
        statements: tuple[int, ...] = (),
    ) -> Decision | WorkerStopped:
        """Apply the policy to ``error`` (the ``attempts``-th retry failed): RETRY (the caller waits with
        :meth:`wait_to_retry` and sends again), SKIP or DEAD_LETTER (done here, for every record), or the
        reason the worker stops."""
        where = records[0].where
        decision = self.policy.decide(error, attempts)
        fields = self._fields(error, records[0], statement, statements)
        if decision is Decision.STOP:
            return stopping(error, where, self.policy.describe_stop(attempts), statement, statements)
        if decision is Decision.RETRY:
            self.stats.retried(statement)
            log.warning(
                "record.retry",
                attempt=attempts + 1,
                max_retries=self.policy.max_retries,
                retry_in_s=self.policy.retry_interval_s,
                why=f"connect.coap.error.policy=RETRY: {reason(error)}",
                **fields,
            )
            return decision
        for raw in records:
            fields = self._fields(error, raw, statement, statements)
            if decision is Decision.DEAD_LETTER:
                assert self.dead_letters is not None
                await self.dead_letters.send(raw, error, statement)
                self.stats.dead_lettered(statement)
                if not self._log_records:
                    continue
                log.warning(
                    "record.dead_lettered",
                    dead_letter_topic=self.dead_letters.topic,
                    why=reason(error),
                    **fields,
                )
            else:
                self.stats.skipped(statement)
                if not self._log_records:
                    continue
                log.warning(
                    "record.skipped", why=f"connect.coap.error.policy=NOOP: {reason(error)}", **fields
                )
        return decision

    async def wait_to_retry(self) -> None:
        await self._sleep(self.policy.retry_interval_s)
