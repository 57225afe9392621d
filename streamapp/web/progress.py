"""``connect.progress.enabled``: one log line per statement every ``connect.progress.interval`` ms with its
delivered / failed / retried / skipped / dead-lettered counts and the delivery rate since the last line."""

from __future__ import annotations

import time

import faust

from streamapp.engine.stats import Stats
from streamapp.logs import get_logger

log = get_logger(__name__)


def log_progress(app: faust.App, stats: Stats, interval_s: float) -> None:
    last: dict[int, tuple[float, int]] = {}

    # faust types app.timer as returning a bare Callable; the body is checked, the decorated name is Any.
    @app.timer(interval_s)  # type: ignore[untyped-decorator]
    async def progress() -> None:
        now = time.monotonic()
        for index, entry in stats.statements.items():
            at, delivered = last.get(index, (now - interval_s, 0))
            rate = (entry.delivered - delivered) / max(now - at, 1e-9)
            last[index] = (now, entry.delivered)
            log.info(
                "progress",
                statement=index,
                topic=entry.source,
                resource=entry.resource,
                delivered=entry.delivered,
                failed=entry.failed,
                retried=entry.retried,
                skipped=entry.skipped,
                dead_lettered=entry.dead_lettered,
                records_per_s=round(rate, 1),
            )
