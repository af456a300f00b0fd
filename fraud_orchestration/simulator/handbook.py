"""The Fraud Detection Handbook's published transactions, mapped onto the event schema.

The handbook ships one Parquet file a day in ``<handbook>/raw/YYYY-MM-DD.parquet`` with
upper-case columns; events keep the same values under the schema's lower-case names and drop
the derived ``TX_TIME_SECONDS`` / ``TX_TIME_DAYS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path

import pandas as pd

from fraud_orchestration.schema import EVENT_FIELDS
from fraud_orchestration.simulator.generator import FRAME_DTYPES
from fraud_orchestration.simulator.landing import (
    LandingSink,
    SimulationSummary,
    as_sink,
    land_frame,
)

HANDBOOK_RELATIVE_DIR = Path("shared/datasets/fraud-handbook")


def default_handbook_dir(project_root: Path) -> Path | None:
    """Where the handbook sits next to a checkout (``<root>/../shared/...``), if it does."""
    candidate = Path(project_root).parent / HANDBOOK_RELATIVE_DIR
    return candidate if candidate.is_dir() else None


def handbook_days(source_dir: Path) -> list[date]:
    """The days with a Parquet file under ``source_dir/raw``, in order."""
    return sorted(date.fromisoformat(p.stem) for p in (Path(source_dir) / "raw").glob("*.parquet"))


def read_handbook_day(source_dir: Path, day: date) -> pd.DataFrame:
    """One handbook day as an event frame (``EVENT_FIELDS`` columns, ``FRAME_DTYPES``)."""
    path = Path(source_dir) / "raw" / f"{day.isoformat()}.parquet"
    frame = pd.read_parquet(path, columns=[name.upper() for name in EVENT_FIELDS])
    return frame.rename(columns=str.lower).astype(FRAME_DTYPES)[list(EVENT_FIELDS)]


def land_handbook(
    source_dir: Path, root: Path | LandingSink, days: Iterable[date] | None = None
) -> SimulationSummary:
    """Land the given handbook days (all of them by default) like simulated ones."""
    sink = as_sink(root)
    chosen = handbook_days(source_dir) if days is None else list(days)
    return SimulationSummary(
        tuple(land_frame(sink, day, read_handbook_day(source_dir, day)) for day in chosen)
    )
