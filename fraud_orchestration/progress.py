"""Percent-complete lines for long work (feature builds, training rounds) in the run's log.

``get_dagster_logger`` writes to the Dagster event log when called inside a run (so the lines
show in the UI's run view) and to Python logging elsewhere (benchmarks, the CLI).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from dagster import get_dagster_logger


class PercentLog:
    """Logs ``<what>: 30%`` each time the work crosses another ``step`` percent."""

    def __init__(self, what: str, step: int = 10, log: logging.Logger | None = None) -> None:
        self.what = what
        self.step = step
        self.log = log or get_dagster_logger()
        self.next_mark = step

    def update(self, percent: float, detail: str = "") -> None:
        if percent < self.next_mark:
            return
        reached = int(percent // self.step) * self.step
        self.log.info(f"{self.what}: {min(reached, 100)}%{' ' + detail if detail else ''}")
        self.next_mark = reached + self.step


@contextmanager
def duckdb_query_progress(
    connection: duckdb.DuckDBPyConnection, what: str, poll_seconds: float = 0.5
) -> Iterator[None]:
    """While the block runs a query on ``connection``, log its progress from another thread.

    DuckDB tracks a running query's progress only with ``enable_progress_bar`` on (its
    printing stays off); ``query_progress`` is -1 while no query runs.
    """
    connection.execute("SET enable_progress_bar = true")
    connection.execute("SET enable_progress_bar_print = false")
    percent_log = PercentLog(what)
    finished = threading.Event()

    def poll() -> None:
        while not finished.wait(poll_seconds):
            percent_log.update(connection.query_progress())

    poller = threading.Thread(target=poll, name="duckdb-progress", daemon=True)
    poller.start()
    try:
        yield
    finally:
        finished.set()
        poller.join()
    percent_log.update(100.0)
