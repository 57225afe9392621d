"""Shared helpers for the benchmarks: timing, ratios against a same-run baseline, results.json, a table.

A benchmark never asserts an absolute speed: machines differ. It measures the code under test and a
baseline doing the same work in the same process, on the same data, and reports (and may gate on) the
ratio of the two.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results.json"
#: Runs kept in results.json per benchmark name (the oldest are dropped first).
KEEP_RUNS = 50

#: One timed pass: processes ``items`` items and returns anything (ignored).
Pass = Callable[[], object]


@dataclass(frozen=True)
class Timing:
    """Wall-clock times (ns) of the timed passes of one implementation; each pass handles ``items`` items."""

    name: str
    items: int
    pass_ns: tuple[int, ...]

    @property
    def best_ns(self) -> int:
        return min(self.pass_ns)

    @property
    def median_ns(self) -> float:
        return statistics.median(self.pass_ns)

    @property
    def rate(self) -> float:
        """Items per second of the best pass (the least disturbed one, as ``timeit`` advises)."""
        return per_second(self.items, self.best_ns)

    @property
    def median_rate(self) -> float:
        return per_second(self.items, self.median_ns)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "items": self.items,
            "passes": len(self.pass_ns),
            "best_ns": self.best_ns,
            "median_ns": round(self.median_ns),
            "records_per_s": round(self.rate),
            "records_per_s_median": round(self.median_rate),
        }


@dataclass(frozen=True)
class Comparison:
    """A candidate against its baseline. ``gate`` is the ratio the candidate must exceed, or None."""

    name: str
    baseline: Timing
    candidate: Timing
    gate: float | None = None

    @property
    def ratio(self) -> float:
        """candidate / baseline throughput, from the best passes (> 1: the candidate is faster)."""
        return self.baseline.best_ns / self.candidate.best_ns

    @property
    def median_ratio(self) -> float:
        return self.baseline.median_ns / self.candidate.median_ns

    @property
    def passed(self) -> bool:
        return self.gate is None or self.ratio > self.gate

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "baseline": self.baseline.as_dict(),
            "candidate": self.candidate.as_dict(),
            "ratio": round(self.ratio, 3),
            "ratio_median": round(self.median_ratio, 3),
            "gate": self.gate,
            "passed": self.passed,
        }


def per_second(items: int, ns: float) -> float:
    return items * 1e9 / ns if ns > 0 else float("inf")


def replay(pool: Sequence[T], count: int) -> list[T]:
    """The pool repeated up to ``count`` items: a list of references, so no per-item index arithmetic."""
    return (list(pool) * (count // len(pool) + 1))[:count]


def time_passes(
    passes: Mapping[str, Pass], *, items: int, repeats: int, warmup: int = 1
) -> dict[str, Timing]:
    """Time each pass ``repeats`` times after ``warmup`` untimed runs; returns a Timing per name.

    Repeats are interleaved (A B A B ..., not A A B B) so that a slow phase of the machine (another process,
    frequency scaling) hits every implementation alike and disturbs the ratio less than the absolute figures.
    The garbage collector is off during a timed pass, as in ``timeit``. A pass loops over its items itself:
    one call per pass, so the harness's own overhead is not part of the per-item figure.
    """
    if repeats < 1 or items < 1:
        raise ValueError("items and repeats must be at least 1")
    for run in passes.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[int]] = {name: [] for name in passes}
    for _ in range(repeats):
        for name, run in passes.items():
            times[name].append(_time_once(run))
    return {name: Timing(name, items, tuple(ns)) for name, ns in times.items()}


def time_pass(run: Pass, *, name: str, items: int, repeats: int, warmup: int = 1) -> Timing:
    """One implementation alone (see :func:`time_passes`)."""
    return time_passes({name: run}, items=items, repeats=repeats, warmup=warmup)[name]


def _time_once(run: Pass) -> int:
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        run()
        return time.perf_counter_ns() - start
    finally:
        if gc_was_enabled:
            gc.enable()


# --- results.json -------------------------------------------------------------------------------------------


def run_entry(benchmark: str, params: Mapping[str, Any], comparisons: list[Comparison]) -> dict[str, Any]:
    """One run as written to results.json."""
    return {
        "benchmark": benchmark,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "dirty": _git_dirty(),
        "python": platform.python_version(),
        "machine": {"arch": platform.machine(), "cpus": os.cpu_count()},
        "params": dict(params),
        "comparisons": [c.as_dict() for c in comparisons],
    }


def append_result(entry: Mapping[str, Any], path: Path = RESULTS, keep: int = KEEP_RUNS) -> None:
    """Append a run to the JSON list in ``path``, keeping the last ``keep`` runs of each benchmark name.

    Written with sorted keys and indent 2, and replaced atomically, so the file diffs cleanly in git.
    """
    runs: list[dict[str, Any]] = []
    if path.exists():
        text = path.read_text(encoding="utf-8")
        runs = json.loads(text) if text.strip() else []
        if not isinstance(runs, list):
            raise ValueError(f"{path}: expected a JSON list of runs")
    runs.append(dict(entry))
    runs = _keep_last(runs, keep)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(runs, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _keep_last(runs: list[dict[str, Any]], keep: int) -> list[dict[str, Any]]:
    seen: dict[str, int] = {}
    kept: list[dict[str, Any]] = []
    for run in reversed(runs):
        name = str(run.get("benchmark"))
        seen[name] = seen.get(name, 0) + 1
        if seen[name] <= keep:
            kept.append(run)
    kept.reverse()
    return kept


def _git(*args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None


def _git_commit() -> str:
    done = _git("rev-parse", "--short", "HEAD")
    if done is None or done.returncode != 0:
        return "unknown"
    return done.stdout.strip() or "unknown"


def _git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (results.json itself excepted); None without git.

    A run on uncommitted code is not a measurement of that commit.
    """
    done = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results.json")
    if done is None or done.returncode != 0:
        return None
    return bool(done.stdout.strip())


# --- output -------------------------------------------------------------------------------------------------


def finish(
    benchmark: str, params: Mapping[str, Any], comparisons: list[Comparison], results: Path, why: str
) -> int:
    """Print the table, append the run to ``results`` and return the exit code: 1 if a gate failed.

    ``why`` explains a failed gate, formatted with ``name``, ``ratio`` and ``gate``.
    """
    print_table(benchmark, comparisons)
    append_result(run_entry(benchmark, params, comparisons), results)
    print(f"{params['records']:,} records per pass, best of {params['repeats']}; written to {results}")
    failed = [c for c in comparisons if not c.passed]
    for c in failed:
        reason = why.format(name=c.name, ratio=c.ratio, gate=c.gate)
        print(f"bench_{benchmark}: FAILED {reason}", file=sys.stderr)
    return 1 if failed else 0


def print_table(benchmark: str, comparisons: list[Comparison]) -> None:
    """A compact table: one row per implementation, the ratio on the candidate's row."""
    header = ("case", "implementation", "records/s best", "records/s median", "ratio best", "median", "gate")
    rows: list[tuple[str, ...]] = []
    for c in comparisons:
        gate = "-" if c.gate is None else (f"> {c.gate:g} " + ("ok" if c.passed else "FAILED"))
        rows.append(
            (c.name, c.baseline.name, _rate(c.baseline.rate), _rate(c.baseline.median_rate), "", "", "")
        )
        rows.append(
            (
                "",
                c.candidate.name,
                _rate(c.candidate.rate),
                _rate(c.candidate.median_rate),
                f"{c.ratio:.2f}x",
                f"{c.median_ratio:.2f}x",
                gate,
            )
        )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    print(f"== {benchmark}")
    for row in (header, *rows):
        cells = [
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def _rate(value: float) -> str:
    return f"{value:,.0f}"
