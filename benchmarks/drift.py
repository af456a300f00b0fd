"""Drift report cost: 1M rows × every model feature, the project's vectorised PSI/JS beside a
straightforward pandas implementation (``pd.cut`` + ``value_counts``) in the same run.

    python -m benchmarks.drift
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._measure import machine
from fraud_orchestration.features import FEATURE_NAMES
from fraud_orchestration.monitoring.drift import BINS, FLOOR, bin_edges, feature_drift

RESULTS = Path(__file__).parent / "results" / "drift.json"


def pandas_psi(reference: pd.DataFrame, current: pd.DataFrame, features: list[str]) -> dict:
    psi = {}
    for name in features:
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


def main() -> None:
    rng = np.random.default_rng(0)
    features = FEATURE_NAMES
    reference = pd.DataFrame(rng.gamma(2.0, 3.0, (200_000, len(features))), columns=features)
    current = pd.DataFrame(rng.gamma(2.1, 3.0, (1_000_000, len(features))), columns=features)
    timings = {}
    for name, run in (
        ("project", lambda: feature_drift(reference, current, features)),
        ("pandas", lambda: pandas_psi(reference, current, features)),
    ):
        seconds = []
        for _ in range(3):
            started = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - started)
        timings[name] = round(min(seconds), 3)
    result = {
        "machine": machine(),
        "rows": len(current),
        "reference_rows": len(reference),
        "features": len(features),
        "seconds": timings,
        "ratio_pandas_over_project": round(timings["pandas"] / timings["project"], 2),
        "target_seconds": 2.0,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
