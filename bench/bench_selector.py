"""Selector micro-benchmark: the compiled selector against a naive per-record one, in the same run.

``python -m bench.bench_selector [--records N] [--repeats R] [--results PATH]``

The selector resolves field paths into a plan once, at start; the claim worth a benchmark is that this beats
a straightforward selector that splits and walks every path string for every record. Case ``projection``
(5 renamed, 2 nested, 7 plain fields out of a 20-field record) is gated: the run exits 1 unless the
compiled selector is faster than the naive one. Case ``select_all`` (``SELECT *`` against a dict copy) is
reported but not gated. Both implementations are checked to give the identical output (same keys, same
order, same values) for every record of the pool before anything is timed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.harness import RESULTS, Comparison, finish, replay, time_passes
from streamapp.kcql import parse_kcql
from streamapp.kcql.selector import compile_selector
from streamapp.records import Record

BENCHMARK = "selector"
POOL = 1000
WARMUP = 1

#: The gated case's SELECT list as written: (field path, alias or None).
PROJECTION: tuple[tuple[str, str | None], ...] = (
    ("temp", "t"),
    ("humidity", "h"),
    ("pressure", "p"),
    ("battery", "bat"),
    ("rssi", "signal"),
    ("location.site.building", "building"),
    ("sensor.calib.gain", "gain"),
    ("id", None),
    ("device", None),
    ("ts", None),
    ("status", None),
    ("online", None),
    ("seq", None),
    ("region", None),
)

Select = Callable[[Record], Any]


def kcql_for(fields: Sequence[tuple[str, str | None]]) -> str:
    columns = ", ".join(path if alias is None else f"{path} AS {alias}" for path, alias in fields)
    return f"INSERT INTO r SELECT {columns} FROM t"


def make_value(i: int) -> dict[str, Any]:
    """A 20-field JSON-like value with nested objects; values vary with ``i``.

    Every 10th value lacks ``status`` and every 11th ``location.site``, so both implementations also go
    through the "missing field is null" path.
    """
    value: dict[str, Any] = {
        "id": i,
        "device": f"dev-{i % 97:03d}",
        "ts": 1_700_000_000_000 + i * 1000,
        "temp": round(18 + (i % 50) * 0.25, 2),
        "humidity": 30 + i % 60,
        "pressure": 990.0 + (i % 40) * 0.5,
        "battery": 100 - i % 100,
        "rssi": -40 - i % 50,
        "snr": (i % 20) / 2,
        "status": ("ok", "warn", "fault")[i % 3],
        "online": i % 5 != 0,
        "seq": i * 7,
        "firmware": f"1.{i % 4}.{i % 10}",
        "region": ("eu", "us", "ap")[i % 3],
        "owner": {"org": f"org-{i % 13}", "contact": {"email": f"ops{i % 13}@example.com"}},
        "location": {
            "lat": 52.0 + (i % 100) / 1000,
            "lon": 4.0 + (i % 70) / 1000,
            "site": {"building": f"B{i % 9}", "floor": i % 12},
        },
        "sensor": {
            "model": f"SHT{30 + i % 5}",
            "calib": {"offset": (i % 7) / 10, "gain": 1 + (i % 11) / 100},
        },
        "tags": ["room", f"zone-{i % 4}"],
        "counters": {"tx": i, "rx": i * 2, "err": i % 3},
        "note": None if i % 4 else "serviced",
    }
    if i % 10 == 9:
        del value["status"]
    if i % 11 == 10:
        del value["location"]["site"]
    return value


def make_pool(size: int) -> list[Record]:
    return [
        Record(value=make_value(i), key=None, headers=(), topic="t", partition=0, offset=i, timestamp=None)
        for i in range(size)
    ]


def naive_selector(fields: Sequence[tuple[str, str | None]]) -> Select:
    """What a selector without a compiled plan does: per record, split each path string and walk the dict.

    Same semantics as the compiled selector for these records: a missing field, or a path through null, is
    None; the output is written under the alias, else the path's last segment.
    """

    def select(record: Record) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path, alias in fields:
            segments = path.split(".")
            current: Any = record.value
            for segment in segments:
                if not isinstance(current, dict):
                    raise TypeError(f"{path}: cannot select {segment!r} from {type(current).__name__}")
                current = current.get(segment)
                if current is None:
                    break
            out[alias if alias is not None else segments[-1]] = current
        return out

    return select


def naive_select_all(record: Record) -> dict[str, Any]:
    """``SELECT *`` done naively: a copy of the record value."""
    return dict(record.value)


def check_identical(name: str, compiled: Select, naive: Select, pool: Sequence[Record]) -> None:
    """Exit with a message unless both give the same keys, in the same order, with equal values."""
    for record in pool:
        got, want = compiled(record), naive(record)
        if type(got) is not type(want) or list(got.items()) != list(want.items()):
            sys.exit(
                f"bench_selector: {name}: compiled and naive output differ at offset {record.offset}:\n"
                f"  compiled: {got!r}\n  naive:    {want!r}"
            )


def loop(select: Select, stream: Sequence[Record]) -> Callable[[], None]:
    def run() -> None:
        for record in stream:
            select(record)

    return run


def compare(
    name: str,
    compiled: Select,
    naive: Select,
    pool: Sequence[Record],
    records: int,
    repeats: int,
    gate: float | None,
) -> Comparison:
    check_identical(name, compiled, naive, pool)
    stream = replay(pool, records)
    timings = time_passes(
        {"naive": loop(naive, stream), "compiled": loop(compiled, stream)},
        items=records,
        repeats=repeats,
        warmup=WARMUP,
    )
    return Comparison(name, baseline=timings["naive"], candidate=timings["compiled"], gate=gate)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_selector", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--records", type=positive_int, default=100_000, help="records per timed pass")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed passes per implementation")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file (default: %(default)s)")
    args = parser.parse_args(argv)

    pool = make_pool(POOL)
    projection_kcql = kcql_for(PROJECTION)
    select_all_kcql = "INSERT INTO r SELECT * FROM t"
    comparisons = [
        compare(
            "projection",
            compile_selector(parse_kcql(projection_kcql)[0]),
            naive_selector(PROJECTION),
            pool,
            args.records,
            args.repeats,
            gate=1.0,
        ),
        compare(
            "select_all",
            compile_selector(parse_kcql(select_all_kcql)[0]),
            naive_select_all,
            pool,
            args.records,
            args.repeats,
            gate=None,
        ),
    ]
    params = {
        "records": args.records,
        "repeats": args.repeats,
        "warmup": WARMUP,
        "pool": POOL,
        "kcql": {"projection": projection_kcql, "select_all": select_all_kcql},
    }
    return finish(
        BENCHMARK,
        params,
        comparisons,
        args.results,
        "{name}: the compiled selector is not faster than the naive per-record one "
        "(ratio {ratio:.2f}x, must be > {gate:g}x)",
    )


if __name__ == "__main__":
    sys.exit(main())
