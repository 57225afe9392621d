"""Work a worker does in the background from the moment its app starts: :func:`every`.

Faust starts an app's timers and tasks (``@app.timer``, ``@app.task``) only once the first partitions are
assigned and table recovery is over. The watches that must also cover the time before, when the worker is
still joining its group or cannot join it at all (``kafka/group.py``'s join errors, ``web/health.py``'s broker
probe), run instead as a small service started with the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
import mode


class _Every(mode.Service):
    def __init__(self, interval_s: float, work: Callable[[], Awaitable[Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._interval_s = interval_s
        self._work = work

    @mode.Service.task
    async def _run(self) -> None:
        async for _ in self.itertimer(self._interval_s, name=getattr(self._work, "__name__", "work")):
            await self._work()


def every(app: faust.App, interval_s: float, work: Callable[[], Awaitable[Any]]) -> None:
    """Run ``work`` every ``interval_s`` seconds from the app's start (the first run after one interval)."""
    app.add_dependency(_Every(interval_s, work, loop=app.loop))
