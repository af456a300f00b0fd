"""Drift report cost: 1M rows × every model feature against a 200,000-row reference.

    python -m benchmarks.drift [--repeat N]

Three implementations of the same PSI, side by side in one run, best of ``--repeat``:

* ``project``: ``fraud_orchestration.monitoring.drift.feature_drift`` (one comparison pass
  per quantile edge);
* ``searchsorted``: the previous project version (``isfinite`` copies, then
  ``searchsorted`` + ``bincount`` per feature), kept here as the baseline;
* ``pandas``: a straightforward ``pd.cut`` + ``value_counts``.

The project's and the baseline's results are compared field by field: the speed-up must not
change a single figure. The frames are built the way the ``drift_report`` asset gets them
(one contiguous column per feature, as read from Parquet).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._measure import machine
from fraud_orchestration.features import FEATURE_NAMES
from fraud_orchestration.monitoring.drift import (
    BINS,
    CALENDAR_FEATURES,
    FLOOR,
    Drift,
    bin_edges,
    feature_drift,
)

RESULTS = Path(__file__).parent / "results" / "drift.json"
TARGET_SECONDS = 2.0


def searchsorted_drift(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str]
) -> list[Drift]:
    """The project's implementation before this benchmark's optimisation (the baseline)."""

    def shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
        index = np.searchsorted(edges, values, side="right")
        counts = np.bincount(index, minlength=len(edges) + 1)
        return np.maximum(counts / max(len(values), 1), FLOOR)

    drifts = []
    for name in features:
        if name in CALENDAR_FEATURES:
            continue
        ref = reference[name].to_numpy(float)
        cur = current[name].to_numpy(float)
        ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
        edges = bin_edges(ref, BINS)
        expected, actual = shares(ref, edges), shares(cur, edges)
        psi = float(np.sum((actual - expected) * np.log(actual / expected)))
        middle = (expected + actual) / 2
        divergence = 0.5 * np.sum(expected * np.log2(expected / middle)) + 0.5 * np.sum(
            actual * np.log2(actual / middle)
        )
        drifts.append(
            Drift(
                name=name,
                psi=round(psi, 6),
                js_distance=round(float(np.sqrt(max(divergence, 0.0))), 6),
                reference_mean=float(np.mean(ref)),
                current_mean=float(np.mean(cur)),
            )
        )
    return drifts


def pandas_psi(reference: pd.DataFrame, current: pd.DataFrame, features: list[str]) -> dict:
    psi = {}
    for name in features:
        if name in CALENDAR_FEATURES:
            continue
        edges = np.concatenate(
            ([-np.inf], bin_edges(reference[name].to_numpy(float), BINS), [np.inf])
        )
        expected = pd.cut(reference[name], edges, right=False).value_counts(
            normalize=True, sort=False
        )
        actual = pd.cut(current[name], edges, right=False).value_counts(normalize=True, sort=False)
        expected, actual = expected.clip(lower=FLOOR), actual.clip(lower=FLOOR)
        psi[name] = float(((actual - expected) * np.log(actual / expected)).sum())
    return psi


def frames(rows: int, reference_rows: int, features: list[str]) -> tuple[pd.DataFrame, ...]:
    """Gamma-distributed features, a flag-like column, and a few NaN and infinities, so that
    the tie-collapsing and non-finite paths are exercised too."""
    rng = np.random.default_rng(0)

    def frame(n: int, shape: float) -> pd.DataFrame:
        columns = {name: rng.gamma(shape, 3.0, n) for name in features}
        columns[features[0]] = (rng.random(n) < 0.3).astype(float)
        columns[features[1]][rng.integers(0, n, 100)] = np.nan
        columns[features[2]][rng.integers(0, n, 10)] = np.inf
        return pd.DataFrame(columns)

    return frame(reference_rows, 2.0), frame(rows, 2.1)


def best_of(run: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Fastest wall time of ``repeat`` runs, the load average then, and the last result."""
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        value = run()
        timings.append((time.perf_counter() - started, os.getloadavg()[0]))
    seconds, load = min(timings)
    return seconds, load, value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    features = list(FEATURE_NAMES)
    reference, current = frames(1_000_000, 200_000, features)
    runs = {
        "project": lambda: feature_drift(reference, current, features),
        "searchsorted": lambda: searchsorted_drift(reference, current, features),
        "pandas": lambda: pandas_psi(reference, current, features),
    }
    seconds, loads, values = {}, {}, {}
    # interleaved rounds, so that a burst of load on the machine hits every contender
    for _ in range(args.repeat):
        for name, run in runs.items():
            took, load, values[name] = best_of(run, 1)
            if took < seconds.get(name, float("inf")):
                seconds[name], loads[name] = round(took, 3), round(load, 2)
    identical = values["project"] == values["searchsorted"]
    result = {
        "machine": machine(),
        "rows": len(current),
        "reference_rows": len(reference),
        "features": len(features),
        "features_compared": len(values["project"]),
        "repeat": args.repeat,
        "seconds": seconds,
        "load_average_at_best": loads,
        "ratio_searchsorted_over_project": round(seconds["searchsorted"] / seconds["project"], 2),
        "ratio_pandas_over_project": round(seconds["pandas"] / seconds["project"], 2),
        "identical_to_searchsorted": identical,
        "target_seconds": TARGET_SECONDS,
        "target_met": seconds["project"] < TARGET_SECONDS,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if not identical:
        raise SystemExit("the project's drift figures differ from the baseline's")


if __name__ == "__main__":
    main()
