"""The engine's window, ordering and offset rules under random completion orders (hypothesis).

A fake sender (``tests/fakes.py``) holds every request until the test completes it, in an order
hypothesis picks, with successes and failures mixed (NOOP lets failed records go). Checked at every step:
never more than the window in flight; one (statement, resource, partition) lane never has two requests at
once and sends in offset order; a record is acked only after every request for it completed, and per
partition in offset order with nothing skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from streamapp.engine.policy import ErrorPolicy
from streamapp.records import RawRecord
from tests.engine import engine
from tests.fakes import HeldSender

records_strategy = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 2)),  # (partition, device)
    min_size=1,
    max_size=25,
)


@settings(max_examples=60)
@given(
    records=records_strategy,
    window=st.integers(1, 5),
    batch=st.sampled_from([None, 2]),
    ordering=st.sampled_from(["partition", "none"]),
    data=st.data(),
)
def test_random_completion_orders_keep_every_rule(records, window, batch, ordering, data) -> None:
    asyncio.run(_scenario(records, window, batch, ordering, data))


async def _scenario(records, window, batch, ordering, data) -> None:
    sender = HeldSender(window)
    batching = f" BATCH = {batch}" if batch else ""
    kcql = (
        f"INSERT INTO d/{{dev}} SELECT n, p FROM t{batching} PROPERTIES(ordering={ordering});"
        f"INSERT INTO all SELECT n, p FROM t PROPERTIES(ordering={ordering})"
    )
    e = engine(kcql, sender, ErrorPolicy("NOOP"))  # type: ignore[arg-type]
    offsets: dict[int, int] = defaultdict(int)
    raws = []
    for n, (partition, device) in enumerate(records):
        value = json.dumps({"n": n, "p": partition, "dev": device}).encode()
        raws.append(RawRecord("t", partition, offsets[partition], None, value, (), None))
        offsets[partition] += 1
    completed: dict[int, int] = defaultdict(int)  # record n -> requests completed (2 statements each)
    acked: list[int] = []

    async def ack(token: int) -> None:
        assert completed[token] == 2, f"record {token} acked after {completed[token]} of 2 requests"
        acked.append(token)

    for i, raw in enumerate(raws):
        await e.engine.take(raw, i, ack)
    for _ in range(10):
        await asyncio.sleep(0)
    loops = 0
    while len(acked) < len(raws):
        loops += 1
        assert loops < 2000, "the engine stalled"
        await asyncio.sleep(0.06 if not sender.held else 0)  # lets an idle batching lane's linger end
        await e.engine.acks.flush()
        if not sender.held:
            continue
        assert len(sender.held) <= window
        if ordering == "partition":
            lanes = [(seg, bodies[0]["p"]) for seg, bodies, _, _ in sender.held]
            assert len(lanes) == len(set(lanes)), f"two requests of one lane in flight: {lanes}"
        pick = data.draw(st.integers(0, len(sender.held) - 1))
        ok = data.draw(st.booleans())
        segments, bodies, future, _ = sender.held[pick]
        for body in bodies:
            completed[body["n"]] += 1
        future.set_result(ok)
        for _ in range(5):
            await asyncio.sleep(0)
    assert sender.max_in_flight <= window
    # Per partition, acked in offset order and none skipped.
    by_partition: dict[int, list[int]] = defaultdict(list)
    for token in acked:
        by_partition[raws[token].partition].append(raws[token].offset)
    for partition, acked_offsets in by_partition.items():
        assert acked_offsets == list(range(offsets[partition])), (partition, acked_offsets)
    if ordering == "partition":
        # Per lane, requests were sent in offset order (a record is sent again only under RETRY, not here).
        seen: dict[tuple, list[int]] = defaultdict(list)
        for segments, bodies in sender.sent:
            for body in bodies:
                seen[(segments, body["p"])].append(body["n"])
        for lane, numbers in seen.items():
            assert numbers == sorted(numbers), (lane, numbers)


async def test_a_revoked_partition_lands_what_is_in_flight_and_sends_nothing_more() -> None:
    sender = HeldSender(window=2)
    e = engine("INSERT INTO r SELECT n, p FROM t", sender)  # type: ignore[arg-type]
    raws = [
        RawRecord("t", i % 2, i // 2, None, json.dumps({"n": i, "p": i % 2}).encode(), (), None)
        for i in range(10)
    ]
    for i, raw in enumerate(raws):
        await e.take(raw, i)
    await asyncio.sleep(0)
    assert sorted(bodies[0]["n"] for _, bodies, _, _ in sender.held) == [0, 1]
    revoking = asyncio.ensure_future(e.engine.revoke({("t", 0)}))
    await asyncio.sleep(0.01)
    assert not revoking.done(), "the revocation waits for partition 0's request in flight"
    for _, _bodies, future, _ in list(sender.held):
        future.set_result(True)
    await asyncio.wait_for(revoking, 1)
    assert e.commits and 0 in e.commits[-1], "what landed during the revocation is acked before the commit"
    for _ in range(20):
        for _, _, future, _ in list(sender.held):
            if not future.done():
                future.set_result(True)
        await asyncio.sleep(0)
    await e.engine.acks.flush()
    sent = [bodies[0]["n"] for _, bodies in sender.sent]
    assert [n for n in sent if n % 2 == 0] == [0], f"partition 0 went on after its revocation: {sent}"
    assert [n for n in sent if n % 2 == 1] == [1, 3, 5, 7, 9]
    assert sorted(e.acked) == [0, 1, 3, 5, 7, 9] and e.dispatch.pending == 0


async def test_a_full_window_at_one_server_does_not_hold_back_another_server() -> None:
    """The window is per server: a request held by a slow statement server leaves the worker's own free."""
    sender = HeldSender(window=1)
    e = engine(  # type: ignore[arg-type]
        "INSERT INTO r SELECT n FROM t; INSERT INTO s SELECT n FROM u PROPERTIES(uri='coap://slow.example')",
        sender,
    )
    await e.take(RawRecord("u", 0, 0, None, b'{"n": 100}', (), None), 0)
    await e.take(RawRecord("t", 0, 0, None, b'{"n": 1}', (), None), 1)
    await e.take(RawRecord("t", 0, 1, None, b'{"n": 2}', (), None), 2)
    for _ in range(5):
        await asyncio.sleep(0)
    assert sorted(bodies[0]["n"] for _, bodies, _, _ in sender.held) == [1, 100]
    next(f for _, bodies, f, _ in sender.held if bodies[0]["n"] == 1).set_result(True)
    for _ in range(5):
        await asyncio.sleep(0)
    assert sorted(bodies[0]["n"] for _, bodies, _, _ in sender.held) == [2, 100]
