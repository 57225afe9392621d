"""Changes to private internals of the libraries under the worker, in one place, each with what it fixes.

Each patch names the exact library version it was written against and checks, when it is applied, that
the code it replaces is still the code it was written for (a hash of its source): a library upgrade that
moves it stops the worker at start with a line saying which patch to revisit, instead of silently running
a copy of old code. ``tests/unit/test_patches.py`` fails the same way on an upgrade.

- :func:`eager_drain` (faust-streaming): Faust's consumer hands every fetched message to its streams
  through ``Service.wait_first(callback(message), suspend_flow.wait())``: four tasks and an
  ``asyncio.wait`` per message, so that a delivery blocked on a full stream buffer can be abandoned when a
  rebalance suspends the flow. Measured on a 2-core machine, a Faust agent that only acks cost 163-238 µs
  of CPU per event, and 80-88 µs with the message handed over eagerly (docs/delivery-engine.md, "Where the
  time goes"). The patch starts the delivery at once and only when it has to wait (the buffer is full, or
  the flow is suspended) falls back to Faust's own race, with the delivery continued where it stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, cast

from faust.transport import consumer as faust_consumer

from streamapp.errors import StreamappError


class PatchOutdated(StreamappError):
    """A patched library changed the code a patch replaces."""


def source_digest(function: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


#: ``faust.transport.consumer.Consumer._drain_messages`` of faust-streaming 0.15.3 (the pinned version).
DRAIN_MESSAGES_DIGEST = "44a2500309e83c63"


async def _resume(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    """Drive a coroutine that was started by hand (``send(None)``) and suspended on ``waiting_on``, as an
    asyncio Task would: wait until what it yielded is done, resume it, until it returns. A cancellation
    reaches the coroutine where it waits."""
    while True:
        try:
            if asyncio.isfuture(waiting_on):
                await asyncio.wait((waiting_on,))
            else:  # a bare yield: one turn of the loop
                await asyncio.sleep(0)
        except asyncio.CancelledError as cancelled:
            if asyncio.isfuture(waiting_on):
                waiting_on.cancel()
            try:
                waiting_on = coroutine.throw(cancelled)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            waiting_on = coroutine.send(None)
        except StopIteration as stop:
            return stop.value


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - run by Faust's fetcher
    """Faust 0.15.3's ``Consumer._drain_messages`` with the message handed over eagerly (module doc); the
    rest is Faust's own, line for line."""
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = faust_consumer.CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    suspended = self.suspend_flow.is_set

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = getmany(timeout=1.0)

            # Sleeping because sometimes getmany is called in a loop
            # never releasing to the event loop
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        # We have a gap in income messages
                        if gap > 1 and r_offset:
                            acks_enabled = acks_enabled_for(message.topic)
                            if acks_enabled:
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        delivery = cast(Coroutine[Any, Any, Any], callback(message))
                        if suspended():
                            await self.wait_first(delivery, self.suspend_flow.wait())
                        else:
                            try:
                                waiting_on = delivery.send(None)
                            except StopIteration:
                                pass  # delivered without waiting: the common case
                            else:
                                await self.wait_first(_resume(delivery, waiting_on), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev(
                            "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                            offset,
                            message.key,
                            message.value,
                        )
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)


def eager_drain() -> None:
    """Apply the Faust patch (module doc); idempotent. Raises :class:`PatchOutdated` on another Faust."""
    consumer_class = faust_consumer.Consumer
    current = consumer_class._drain_messages
    if current is _drain_messages:
        return
    found = source_digest(current)
    if found != DRAIN_MESSAGES_DIGEST:
        raise PatchOutdated(
            "faust.transport.consumer.Consumer._drain_messages is not the code streamapp/patches.py "
            f"eager_drain was written for (faust-streaming 0.15.3; source digest {found}, expected "
            f"{DRAIN_MESSAGES_DIGEST}): revisit the patch"
        )
    # Replacing the method is the patch (mypy refuses assignments to methods by default).
    consumer_class._drain_messages = _drain_messages  # type: ignore[method-assign]


def apply_all() -> None:
    """Every patch of this module (``streamapp/main.py`` applies them before Faust starts)."""
    eager_drain()
