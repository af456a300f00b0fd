"""Build a training set from offline-store records and store it as one immutable version.

A version is a folder named by its content hash holding ``train.parquet``,
``test.parquet`` and ``manifest.json``; the ``CURRENT`` pointer is replaced last, so a
crash mid-write leaves the previous training set current.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fraud_orchestration.features import FEATURE_NAMES, KEY_COLUMNS, LABEL_COLUMN
from fraud_orchestration.resources.lake import Lake
from fraud_orchestration.training.windows import (
    TrainingWindows,
    in_window,
    test_without_known_frauds,
)

PREFIX = "training_set"
COLUMNS = [*KEY_COLUMNS, *FEATURE_NAMES, LABEL_COLUMN]


@dataclass(frozen=True)
class TrainingSet:
    train: pd.DataFrame  # includes the validation days; see ``validation_mask``
    test: pd.DataFrame
    windows: TrainingWindows
    manifest: dict

    @property
    def validation_mask(self) -> pd.Series:
        days = self.train["tx_datetime"].dt.date
        return (days >= self.windows.validation.start) & (days < self.windows.validation.end)


def build_training_set(
    records: pd.DataFrame, windows: TrainingWindows, feature_version: str
) -> TrainingSet:
    """``records`` are offline-store rows covering ``windows.days_needed``."""
    records = records[COLUMNS].sort_values(["tx_time_seconds", "transaction_id"], kind="stable")
    train = in_window(records, windows.train).reset_index(drop=True)
    test = test_without_known_frauds(
        records[records["tx_datetime"].dt.date >= windows.train.start], windows
    )
    manifest: dict[str, Any] = {
        "windows": windows.as_dict(),
        "features": FEATURE_NAMES,
        "feature_definition_version": feature_version,
        "label": LABEL_COLUMN,
        "counts": {name: _counts(frame) for name, frame in (("train", train), ("test", test))},
        "content_hash": _content_hash(train, test),
    }
    manifest["counts"]["validation"] = _counts(in_window(train, windows.validation))
    return TrainingSet(train=train, test=test, windows=windows, manifest=manifest)


def _counts(frame: pd.DataFrame) -> dict:
    frauds = int(frame[LABEL_COLUMN].sum())
    return {
        "rows": len(frame),
        "frauds": frauds,
        "fraud_rate": round(frauds / len(frame), 6) if len(frame) else 0.0,
        "cards": int(frame["customer_id"].nunique()),
    }


def _content_hash(*frames: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def store_training_set(lake: Lake, training_set: TrainingSet) -> str:
    """Write the version folder, then point ``CURRENT`` at it. Returns the version id."""
    version = training_set.manifest["content_hash"]
    for name in ("train", "test"):
        buffer = io.BytesIO()
        getattr(training_set, name).to_parquet(buffer, index=False)
        lake.write_object(f"{PREFIX}/{version}/{name}.parquet", buffer.getvalue())
    manifest = json.dumps(training_set.manifest, indent=2, sort_keys=True).encode()
    lake.write_object(f"{PREFIX}/{version}/manifest.json", manifest)
    lake.write_object(f"{PREFIX}/CURRENT", version.encode())
    return version


def load_training_set(lake: Lake, version: str | None = None) -> TrainingSet:
    """The current training set (or a named version)."""
    version = version or lake.read_object(f"{PREFIX}/CURRENT").decode().strip()
    manifest = json.loads(lake.read_object(f"{PREFIX}/{version}/manifest.json"))
    frames = {
        name: pd.read_parquet(io.BytesIO(lake.read_object(f"{PREFIX}/{version}/{name}.parquet")))
        for name in ("train", "test")
    }
    windows = manifest["windows"]
    return TrainingSet(
        train=frames["train"],
        test=frames["test"],
        windows=TrainingWindows.from_dict(windows),
        manifest=manifest,
    )
