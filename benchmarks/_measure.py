"""Wall time and peak memory of one piece of work, measured in a fresh child process.

Each job runs in its own ``spawn`` child so that its peak RSS is its own: the child reports
``getrusage(RUSAGE_SELF).ru_maxrss`` when the job ends. (The parent's ``RUSAGE_CHILDREN``
would be the maximum over every child waited for so far, mixing jobs together.) The wall time
covers the job only, not the child's start-up and imports. On a shared machine the wall time
grows with other work; the CPU time and the load average at the end of the job show how much.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd


@dataclass(frozen=True)
class Measurement:
    seconds: float
    cpu_seconds: float
    """User + system CPU time of the job, over all its threads."""
    peak_rss_bytes: int
    load_average: float
    """The machine's 1-minute load average when the job ended."""
    value: Any
    """What the job returned (must be picklable)."""

    @property
    def peak_rss_gb(self) -> float:
        return self.peak_rss_bytes / 1e9


def _cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _run(connection: Any, job: Callable[..., Any], args: tuple) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    value = job(*args)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    connection.send(
        Measurement(
            seconds=seconds,
            cpu_seconds=_cpu_seconds(after) - _cpu_seconds(before),
            peak_rss_bytes=after.ru_maxrss * 1024,  # ru_maxrss is in KiB on Linux
            load_average=os.getloadavg()[0],
            value=value,
        )
    )
    connection.close()


def measure(job: Callable[..., Any], *args: Any) -> Measurement:
    """Run ``job(*args)`` in a fresh spawned process; ``job`` must be importable by name."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_run, args=(sender, job, args))
    child.start()
    sender.close()
    try:
        measurement = receiver.recv()
    except EOFError:
        child.join()
        raise RuntimeError(f"{job.__name__} died with exit code {child.exitcode}") from None
    child.join()
    return measurement


def machine() -> dict[str, Any]:
    """What the figures were measured on (the load average shows a busy machine)."""
    total_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "memory_gb": round(total_memory / 1e9, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "duckdb": duckdb.__version__,
        "pandas": pd.__version__,
    }
