"""faust-streaming 0.15.3 (pinned in pyproject.toml): one patch, one replaced method, four accessors.

- :func:`eager_drain` replaces ``faust.transport.consumer.Consumer._drain_messages``. Faust's consumer
  hands every fetched message to its streams through ``Service.wait_first(callback(message),
  suspend_flow.wait())``: four tasks and an ``asyncio.wait`` per message, so that a delivery blocked on a
  full stream buffer can be abandoned when a rebalance suspends the flow. Measured on a 2-core machine, a
  Faust agent that only acks cost 163-238 µs of CPU per event, and 80-88 µs with the message handed over
  eagerly (docs/delivery-engine.md, "Where the time goes"). The patch starts the delivery at once and only
  when it has to wait (the buffer is full, or the flow is suspended) falls back to Faust's own race, with
  the delivery continued where it stopped. No setting or hook changes how Faust hands a message over.
- :class:`PromptTableManager` replaces ``TableManager.on_start``, which sleeps one second before the first
  subscription so that agents registered late still make it; this app registers its agents before the
  worker starts and keeps no table, so the second only delays the join (docs/production.md, "Start and
  restart"). Faust has no setting for the wait, and the rest of ``on_start`` is the private
  ``_update_channels``.
- :func:`created_consumer`: ``App._consumer``. ``App.consumer`` *creates* a consumer on first access, so
  it cannot tell whether the worker has one yet; the engine's commit (``kafka/commits.py``) must not make
  one before the worker started.
- :func:`consumer_thread` and :func:`aiokafka_consumer`: ``app.consumer._thread`` (the service thread the
  aiokafka consumer runs in) and its ``_consumer``. Faust exposes neither, and the aiokafka consumer is
  where the group's coordinator, the committed offsets and the join errors are (``kafka/group.py``); calls
  on it must run on that thread's loop.
- :func:`aiokafka_producer`: ``app.producer._ensure_producer()``, the aiokafka producer under Faust's, whose
  client asks the broker for metadata (``web/health.py``'s broker probe); Faust exposes no client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, cast

import aiokafka
import faust
from faust.tables.manager import TableManager
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import ConsumerT

from streamapp.patches.checks import Internal

DISTRIBUTION, VERSION = "faust-streaming", "0.15.3"

#: The method :func:`eager_drain` replaced, once it has (its digest is then checked on this).
_replaced: dict[str, Any] = {}


def _faust_drain_messages() -> Any:
    """Faust's ``Consumer._drain_messages``: the one in place, or the one :func:`eager_drain` replaced."""
    current = faust_consumer.Consumer._drain_messages
    return _replaced["_drain_messages"] if current is _drain_messages else current


def _internal(name: str, find: Any, used_by: str, **check: Any) -> Internal:
    return Internal(name, find, DISTRIBUTION, VERSION, __name__, used_by, **check)


DRAIN_MESSAGES = _internal(
    "faust.transport.consumer.Consumer._drain_messages",
    _faust_drain_messages,
    "eager_drain",
    digest="44a2500309e83c63",
)
TABLE_MANAGER_START = _internal(
    "faust.tables.manager.TableManager.on_start (and its _update_channels)",
    lambda: TableManager.on_start,
    "PromptTableManager",
    digest="365dd25fbc0e0684",
)
APP_CONSUMER = _internal(
    "faust.App.consumer (created on first access into App._consumer)",
    lambda: faust.App.consumer,
    "created_consumer",
    digest="354b140caceca03c",
)
CONSUMER_THREAD = _internal(
    "faust.transport.consumer.ThreadDelegateConsumer._thread",
    lambda: faust_consumer.ThreadDelegateConsumer.__init__,
    "consumer_thread",
    digest="7072ae80eac1ff62",
)
THREAD_CONSUMER = _internal(
    "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._consumer",
    lambda: faust_aiokafka.AIOKafkaConsumerThread.on_start,
    "aiokafka_consumer",
    digest="38b4e8bd1e10723a",
)
PRODUCER = _internal(
    "faust.transport.drivers.aiokafka.Producer._ensure_producer",
    lambda: faust_aiokafka.Producer._ensure_producer,
    "aiokafka_producer",
    digest="5592a4bbdf251325",
)

#: Every internal of faust-streaming this module relies on.
INTERNALS = (DRAIN_MESSAGES, TABLE_MANAGER_START, APP_CONSUMER, CONSUMER_THREAD, THREAD_CONSUMER, PRODUCER)


# -- eager_drain -------------------------------------------------------------------------------------------


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
    """Apply the hand-over patch (module doc); idempotent. Raises :class:`PatchOutdated` on another Faust."""
    consumer_class = faust_consumer.Consumer
    current = consumer_class._drain_messages
    if current is _drain_messages:
        return
    DRAIN_MESSAGES.check()  # on the method in place: whatever put it there, it must be Faust's own
    _replaced["_drain_messages"] = current
    consumer_class._drain_messages = _drain_messages  # type: ignore[method-assign]


# -- PromptTableManager ------------------------------------------------------------------------------------


class PromptTableManager(TableManager):
    """Faust's table manager without its one-second wait at start (module doc): ``faust.App(TableManager=
    PromptTableManager)``. The rest is Faust 0.15.3's ``on_start``."""

    async def on_start(self) -> None:
        await self._update_channels()
        await self.recovery.start()


# -- accessors ---------------------------------------------------------------------------------------------


def created_consumer(app: faust.App) -> ConsumerT | None:
    """The app's consumer if one was created (the worker started it), else None; never creates one."""
    return app._consumer


def consumer_thread(app: faust.App) -> faust_aiokafka.AIOKafkaConsumerThread:
    """The service thread Faust's consumer runs the aiokafka consumer in: ``call_thread`` runs a coroutine
    through its method queue, ``thread_loop`` is its event loop."""
    return cast(faust_aiokafka.Consumer, app.consumer)._thread


def aiokafka_consumer(app: faust.App) -> aiokafka.AIOKafkaConsumer | None:
    """The aiokafka consumer in :func:`consumer_thread` (None before the thread started it)."""
    return consumer_thread(app)._consumer


def aiokafka_producer(app: faust.App) -> aiokafka.AIOKafkaProducer:
    """The aiokafka producer under Faust's (``faust.exceptions.NotReady`` before it started)."""
    return cast(faust_aiokafka.Producer, app.producer)._ensure_producer()
