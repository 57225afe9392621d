"""The private-API patches (``streamapp/patches.py``) fail loudly when the patched library moves, and the
eager hand-over keeps Faust's behaviour: a delivery that must wait is raced against a flow suspension."""

from __future__ import annotations

import asyncio

import pytest
from faust.transport import consumer as faust_consumer

from streamapp import patches


def test_faust_still_has_the_code_the_drain_patch_replaces() -> None:
    original = faust_consumer.Consumer._drain_messages
    if original is patches._drain_messages:  # applied by an app built earlier in this run
        pytest.skip("already applied; the digest was checked when it was")
    assert patches.source_digest(original) == patches.DRAIN_MESSAGES_DIGEST, (
        "faust-streaming changed Consumer._drain_messages: revisit streamapp/patches.py eager_drain"
    )


def test_another_faust_stops_the_patch_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    async def changed(self: object, fetcher: object) -> None:
        return None

    monkeypatch.setattr(faust_consumer.Consumer, "_drain_messages", changed)
    with pytest.raises(patches.PatchOutdated, match="revisit the patch"):
        patches.eager_drain()


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
    resumed = asyncio.ensure_future(patches._resume(coroutine, waiting_on))
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
    resumed = asyncio.ensure_future(patches._resume(coroutine, coroutine.send(None)))
    await asyncio.sleep(0)
    resumed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await resumed
    assert cleaned == [True] and gate.cancelled()
