"""The private-API patches (``streamapp/patches/``): each internal they rely on is still what its patch was
written against (one test per internal: these fail on a library upgrade that changed one), a changed one
stops the worker at start in one line, each accessor reaches what it names, and the eager hand-over keeps
Faust's behaviour: a delivery that must wait is raced against a flow suspension."""

from __future__ import annotations

import asyncio
import logging

import aiokafka
import faust
import pytest
from aiokafka.errors import InconsistentGroupProtocolError
from faust.exceptions import NotReady
from faust.transport import consumer as faust_consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from mbedtls import tls

from streamapp import patches
from streamapp.patches import aiokafka as aiokafka_patches
from streamapp.patches import faust as faust_patches
from streamapp.patches import mbedtls as mbedtls_patches
from streamapp.patches.checks import Internal, PatchOutdated

# -- every internal, as written against ---------------------------------------------------------------------


@pytest.mark.parametrize("internal", patches.INTERNALS, ids=lambda internal: internal.name.split(" ")[0])
def test_the_library_internal_is_what_its_patch_was_written_against(internal: Internal) -> None:
    assert internal.problem() is None, (
        f"{internal.distribution} changed {internal.name}: revisit {internal.module} {internal.used_by} "
        f"({internal.problem()})"
    )


def test_every_patch_module_declares_its_internals_and_the_index_holds_them_all() -> None:
    modules = (faust_patches, aiokafka_patches, patches.aiocoap, mbedtls_patches)
    assert tuple(i for module in modules for i in module.INTERNALS) == patches.INTERNALS
    assert all(internal.module.startswith("streamapp.patches.") for internal in patches.INTERNALS)
    assert all((internal.digest is None) != (internal.expect is None) for internal in patches.INTERNALS)


def test_a_changed_internal_stops_the_worker_at_start_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faust.App, "consumer", property(lambda app: None))
    with pytest.raises(PatchOutdated) as info:
        patches.apply_all()  # what app.create_app runs first
    line = str(info.value)
    assert "\n" not in line
    assert line.startswith("faust.App.consumer (created on first access into App._consumer) is not what ")
    assert "streamapp/patches/faust.py created_consumer was written against (faust-streaming 0.15.3" in line
    assert "its source changed" in line and line.endswith("revisit the patch")


def test_a_missing_internal_and_compiled_code_of_another_version_are_named() -> None:
    gone = Internal(
        "x.Y._z", lambda: faust.App._no_such_thing, "faust-streaming", "0.15.3", "m", "f", digest="0"
    )
    assert (gone.problem() or "").startswith("it is gone (AttributeError")
    other_version = Internal(
        "mbedtls.tls.TLSWrappedBuffer._handshake_state",
        mbedtls_patches.HANDSHAKE_STATE.find,
        "python-mbedtls",
        "2.9.0",
        "m",
        "f",
        expect=lambda _: True,
        compiled=True,
    )
    assert "only the version it was read in is trusted" in (other_version.problem() or "")
    wrong_fact = Internal(
        "l", lambda: "text", "aiokafka", "0.14.0", "m", "f", expect=str.isdigit, expected="a number"
    )
    assert wrong_fact.problem() == "it is no longer a number (found 'text')"
    no_source = Internal("n", lambda: len, "faust-streaming", "0.15.3", "m", "f", digest="0")
    assert (no_source.problem() or "").startswith("its source cannot be read (TypeError")


# -- faust ------------------------------------------------------------------------------------------------


def test_another_faust_stops_the_drain_patch_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    async def changed(self: object, fetcher: object) -> None:
        return None

    monkeypatch.setattr(faust_consumer.Consumer, "_drain_messages", changed)
    with pytest.raises(PatchOutdated, match=r"eager_drain was written against .* revisit the patch"):
        faust_patches.eager_drain()


def test_the_drain_patch_applies_once_and_its_internal_is_still_checked_on_faust_s_own() -> None:
    faust_patches.eager_drain()
    faust_patches.eager_drain()
    assert faust_consumer.Consumer._drain_messages is faust_patches._drain_messages
    assert faust_patches.DRAIN_MESSAGES.find() is not faust_patches._drain_messages
    assert faust_patches.DRAIN_MESSAGES.problem() is None


def test_the_faust_accessors_reach_the_consumer_its_thread_and_the_producer() -> None:
    app = faust.App("patches-test", broker="kafka://127.0.0.1:9")
    assert faust_patches.created_consumer(app) is None  # and asking did not create one
    assert faust_patches.created_consumer(app) is None
    consumer = app.consumer
    assert faust_patches.created_consumer(app) is consumer
    thread = faust_patches.consumer_thread(app)
    assert isinstance(thread, AIOKafkaConsumerThread) and callable(thread.call_thread)
    assert faust_patches.aiokafka_consumer(app) is None  # the thread has not started it
    with pytest.raises(NotReady):
        faust_patches.aiokafka_producer(app)


def test_the_prompt_table_manager_is_faust_s_without_the_wait() -> None:
    assert issubclass(faust_patches.PromptTableManager, faust.tables.manager.TableManager)
    assert faust_patches.TABLE_MANAGER_START.problem() is None


# -- aiokafka ---------------------------------------------------------------------------------------------


async def test_the_group_coordinator_is_none_until_the_consumer_started() -> None:
    consumer = aiokafka.AIOKafkaConsumer(group_id="g", bootstrap_servers="127.0.0.1:9")
    assert aiokafka_patches.group_coordinator(consumer) is None


def test_aiokafka_s_refused_join_lines_are_dropped_and_no_other(caplog: pytest.LogCaptureFixture) -> None:
    aiokafka_patches.quiet_protocol_conflict_lines()
    aiokafka_patches.quiet_protocol_conflict_lines()
    coordinator_log = logging.getLogger(aiokafka_patches.COORDINATOR_LOGGER)
    quieting = [f for f in coordinator_log.filters if isinstance(f, aiokafka_patches._ProtocolConflictLines)]
    assert len(quieting) == 1
    with caplog.at_level(logging.ERROR, logger=aiokafka_patches.COORDINATOR_LOGGER):
        coordinator_log.error(
            "Attempt to join group failed due to fatal error: %s", InconsistentGroupProtocolError()
        )
        coordinator_log.error("Heartbeat failed: %r", "something else")
    assert [r.getMessage() for r in caplog.records] == ["Heartbeat failed: 'something else'"]


# -- python-mbedtls ---------------------------------------------------------------------------------------


def test_the_handshake_step_of_a_fresh_dtls_buffer_is_the_first() -> None:
    context = tls.ClientContext(tls.DTLSConfiguration(validate_certificates=False))
    buffer = context.wrap_buffers(server_hostname=None)
    assert mbedtls_patches.handshake_step(buffer) is tls.HandshakeStep.HELLO_REQUEST


# -- the eager hand-over -------------------------------------------------------------------------------------


async def test_resume_finishes_a_coroutine_started_by_hand() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def delivery() -> str:
        steps.append("started")
        value = await gate
        await asyncio.sleep(0)
        steps.append(f"got {value}")
        return "done"

    coroutine = delivery()
    waiting_on = coroutine.send(None)  # runs to its first wait, as the patched drain does
    assert steps == ["started"] and waiting_on is gate
    resumed = asyncio.ensure_future(faust_patches._resume(coroutine, waiting_on))
    await asyncio.sleep(0)
    assert not resumed.done()
    gate.set_result(7)
    assert await asyncio.wait_for(resumed, 1) == "done" and steps == ["started", "got 7"]


async def test_resume_cancelled_cancels_the_coroutine_where_it_waits() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned: list[bool] = []

    async def delivery() -> None:
        try:
            await gate
        finally:
            cleaned.append(True)

    coroutine = delivery()
    resumed = asyncio.ensure_future(faust_patches._resume(coroutine, coroutine.send(None)))
    await asyncio.sleep(0)
    resumed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await resumed
    assert cleaned == [True] and gate.cancelled()
