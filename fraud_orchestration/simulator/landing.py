"""Landing events as Firehose would: gzipped JSON lines under an hourly prefix.

A day's lines go to
``landing/transactions/YYYY/MM/DD/HH/fraud-events-1-YYYY-MM-DD-HH-00-00-NNNN.jsonl.gz``,
grouped by the hour of the ``tx_datetime`` written in them; lines without a readable one, or
with one on another day, land in ``FALLBACK_HOUR`` of the day written. Names and bytes depend
only on the lines (gzip with mtime 0), so landing the same day again rewrites identical files.
A sink that can only ``put`` never deletes: to replace a day with fewer lines than before,
:func:`clear_day` first.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd

from fraud_orchestration.schema import LANDING_PREFIX, landing_hour_prefix
from fraud_orchestration.simulator.bad_records import BadRecordConfig, inject_bad_records
from fraud_orchestration.simulator.generator import SimulationConfig, generate_day, iter_days
from fraud_orchestration.simulator.records import frame_to_lines, frame_to_records

STREAM_NAME = "fraud-events"
MAX_LINES_PER_FILE = 10_000
FALLBACK_HOUR = 23
"""Lines whose event time is unreadable or on another day land in this hour of the day written."""
_EVENT_HOUR = re.compile(r'"tx_datetime"\s*:\s*"(\d{4}-\d{2}-\d{2})[T ](\d{2}):\d{2}:\d{2}')


@runtime_checkable
class LandingSink(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (a ``/``-separated relative path), replacing it whole."""


class LocalLandingSink:
    """Files under ``root``, each written to a hidden temporary file and renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), 0o644)
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@dataclass(frozen=True)
class DaySummary:
    day: date
    n_transactions: int
    n_fraud: int
    n_lines: int
    keys: tuple[str, ...]
    injected: dict[str, int]
    """Bad records added, by kind (empty when none were)."""


@dataclass(frozen=True)
class SimulationSummary:
    days: tuple[DaySummary, ...]

    @property
    def n_transactions(self) -> int:
        return sum(d.n_transactions for d in self.days)

    @property
    def n_fraud(self) -> int:
        return sum(d.n_fraud for d in self.days)

    @property
    def n_lines(self) -> int:
        return sum(d.n_lines for d in self.days)

    @property
    def fraud_rate(self) -> float:
        return self.n_fraud / self.n_transactions if self.n_transactions else 0.0


def landing_key(day: date, hour: int, seq: int) -> str:
    prefix = landing_hour_prefix(day.year, day.month, day.day, hour)
    return f"{prefix}/{STREAM_NAME}-1-{day:%Y-%m-%d}-{hour:02d}-00-00-{seq:04d}.jsonl.gz"


def land_lines(
    sink: LandingSink,
    day: date,
    lines: Iterable[str],
    max_lines_per_file: int = MAX_LINES_PER_FILE,
) -> tuple[str, ...]:
    """Land ``day``'s JSON lines (without newlines), keeping their order; returns the keys."""
    by_hour: dict[int, list[str]] = defaultdict(list)
    day_text = day.isoformat()
    for line in lines:
        by_hour[_landing_hour(line, day_text)].append(line)
    keys = []
    for hour in sorted(by_hour):
        hour_lines = by_hour[hour]
        for seq, start in enumerate(range(0, len(hour_lines), max_lines_per_file)):
            body = "".join(f"{line}\n" for line in hour_lines[start : start + max_lines_per_file])
            key = landing_key(day, hour, seq)
            sink.put(key, gzip.compress(body.encode("utf-8"), compresslevel=6, mtime=0))
            keys.append(key)
    return tuple(keys)


def _landing_hour(line: str, day_text: str) -> int:
    """Read with a pattern, not a JSON parser: a truncated line still lands in its hour."""
    found = _EVENT_HOUR.search(line)
    if found is None or found[1] != day_text:
        return FALLBACK_HOUR
    hour = int(found[2])
    return hour if hour < 24 else FALLBACK_HOUR


def land_frame(
    sink: LandingSink,
    day: date,
    frame: pd.DataFrame,
    bad: BadRecordConfig | None = None,
    seed: int | Sequence[int] = 0,
) -> DaySummary:
    """Land one day's events, with ``bad`` records injected (seeded by ``seed``) if given."""
    if bad is None:
        lines, injected = frame_to_lines(frame), {}
    else:
        lines, manifest = inject_bad_records(frame_to_records(frame), bad, seed)
        injected = manifest.injected
    return DaySummary(
        day=day,
        n_transactions=len(frame),
        n_fraud=int(frame["tx_fraud"].sum()),
        n_lines=len(lines),
        keys=land_lines(sink, day, lines),
        injected=injected,
    )


def as_sink(root: Path | LandingSink) -> LandingSink:
    return root if isinstance(root, LandingSink) else LocalLandingSink(Path(root))


def simulate(
    config: SimulationConfig,
    root: Path | LandingSink,
    bad: BadRecordConfig | None = None,
    bad_days: Iterable[date] | None = None,
) -> SimulationSummary:
    """Simulate and land every day of ``config`` under ``root`` (a directory or a sink).

    ``bad`` records go into ``bad_days`` only, or into every day when ``bad_days`` is None.
    """
    sink = as_sink(root)
    corrupt = None if bad_days is None else set(bad_days)
    summaries = []
    for day, frame in iter_days(config):
        day_bad = bad if corrupt is None or day in corrupt else None
        summaries.append(land_frame(sink, day, frame, day_bad, seed=_bad_seed(config, day)))
    return SimulationSummary(tuple(summaries))


def simulate_day(
    config: SimulationConfig,
    day: date,
    root: Path | LandingSink,
    bad: BadRecordConfig | None = None,
) -> DaySummary:
    """Land one day of ``config`` exactly as :func:`simulate` lands it (e.g. for a partition)."""
    frame = generate_day(config, day)
    return land_frame(as_sink(root), day, frame, bad, seed=_bad_seed(config, day))


def _bad_seed(config: SimulationConfig, day: date) -> tuple[int, int]:
    return config.seed, day.toordinal()


def clear_day(root: Path, day: date) -> None:
    """Remove everything landed for ``day`` under the local ``root``."""
    folder = Path(root) / LANDING_PREFIX / f"{day:%Y/%m/%d}"
    if folder.exists():
        shutil.rmtree(folder)
