"""Delivery counters per KCQL statement, read by the web views and ``check``.

Only the event loop thread touches these, so plain integers are exact without locks.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from streamapp.kcql import Statement


@dataclass
class StatementStats:
    statement: int
    source: str
    resource: str
    delivered: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    in_flight: int = 0
    last_error: str | None = None
    last_error_at: float | None = None

    def record_failure(self, message: str) -> None:
        self.failed += 1
        self.last_error = message
        self.last_error_at = time.time()


@dataclass
class Stats:
    started_at: float = field(default_factory=time.time)
    statements: dict[int, StatementStats] = field(default_factory=dict)
    tombstones_skipped: int = 0
    #: Records the policy let go that failed before reaching any statement (undecodable, unselectable).
    records_skipped: int = 0
    records_dead_lettered: int = 0

    @classmethod
    def for_statements(cls, statements: tuple[Statement, ...]) -> Stats:
        return cls(statements={s.index: StatementStats(s.index, s.source, s.resource) for s in statements})

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_s": round(time.time() - self.started_at, 3),
            "tombstones_skipped": self.tombstones_skipped,
            "records_skipped": self.records_skipped,
            "records_dead_lettered": self.records_dead_lettered,
            "statements": [asdict(s) for s in self.statements.values()],
        }
