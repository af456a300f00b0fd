"""Training time: ``tree_method="hist"`` beside ``"exact"``, in the same run.

    python -m benchmarks.training [--rows 1000000 --rows 5000000] [--trees 100] [--handbook]

(a) Simulated rows (``benchmarks.features``' 10M-row world; the feature SQL on DuckDB):
    ``train_model`` with the project's ``TrainingParams`` except that early stopping is off
    and the tree count is fixed (``--trees``), so that both methods do the same work; the
    figure is rows × trees per second per core (``n_jobs`` cores). 85 % of the rows train,
    the rest is the validation set ``train_model`` picks its threshold on.
(b) ``--handbook``: the handbook prequential run (4 folds) through ``benchmarks.handbook``'s
    own functions, with both methods; skipped with a message when the data set is absent.

Results go to ``benchmarks/results/training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks._measure import machine
from fraud_orchestration.features import FEATURE_NAMES
from fraud_orchestration.modeling.trainer import TrainingParams, train_model
from fraud_orchestration.partitions import day_bounds_seconds
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine

RESULTS = Path(__file__).parent / "results" / "training.json"
METHODS = ("hist", "exact")
WARM_UP_DAYS = 30
"""Rows from the first 30 days are left out: their 30-day windows are still filling."""


def simulated_features(rows: int) -> pd.DataFrame:
    """``rows`` feature rows after the warm-up, from ``benchmarks.features``' 10M-row raw lake
    (50,000 cards, 104 days; generated once), built with one ``DuckDBFeatureEngine.build``
    and cached in ``benchmarks/data/training-features.parquet``."""
    from benchmarks.features import DATA_DIR, simulated_lake

    cache = DATA_DIR / "training-features.parquet"
    if not cache.is_file():
        lake = simulated_lake()
        start = day_bounds_seconds(lake.days[WARM_UP_DAYS])[0]
        end = day_bounds_seconds(lake.days[-1])[1]
        print(f"building features for {len(lake.days)} days (once) ...", flush=True)
        DuckDBFeatureEngine().build(lake.sources, start, end, str(cache))
    features = pd.read_parquet(cache)
    if len(features) < rows:
        raise ValueError(f"only {len(features):,} feature rows cached, {rows:,} wanted")
    ordered = features.sort_values(["tx_time_seconds", "transaction_id"], kind="stable")
    return ordered.head(rows).reset_index(drop=True)


def time_methods(features: pd.DataFrame, trees: int) -> dict[str, Any]:
    cut = int(len(features) * 0.85)
    train, valid = features.iloc[:cut], features.iloc[cut:]
    base = replace(TrainingParams(), n_estimators=trees, early_stopping_rounds=None)
    results: dict[str, Any] = {"rows": len(features), "train_rows": len(train)}
    for method in METHODS:
        params = replace(base, tree_method=method)
        started = time.perf_counter()
        model = train_model(train, valid, list(FEATURE_NAMES), params)
        seconds = time.perf_counter() - started
        built = model.booster.num_boosted_rounds()
        results[method] = {
            "seconds": round(seconds, 2),
            "trees": built,
            "load_average": round(os.getloadavg()[0], 2),
            "rows_x_trees_per_second_per_core": round(len(train) * built / seconds / params.n_jobs),
        }
        print(f"  {len(train):,} rows, {method}: {seconds:.1f} s", flush=True)
    results["ratio_exact_over_hist"] = round(
        results["exact"]["seconds"] / results["hist"]["seconds"], 2
    )
    results["params"] = asdict(base)
    return results


def handbook_prequential() -> dict[str, Any]:
    from benchmarks import handbook

    if not (handbook.HANDBOOK_DIR / "raw").is_dir():
        message = f"skipped: the handbook data set is not at {handbook.HANDBOOK_DIR}"
        print(message)
        return {"skipped": message}
    features = DuckDBFeatureEngine().compute(handbook.load_handbook(handbook.HANDBOOK_DIR))
    params = handbook.default_params()
    out: dict[str, Any] = {}
    for method in METHODS:
        started = time.perf_counter()
        result = handbook.evaluate(
            features, list(FEATURE_NAMES), replace(params, tree_method=method)
        )
        folds = result["folds"]
        out[method] = {
            "seconds": round(time.perf_counter() - started, 1),
            "training_seconds_per_fold": result["training_seconds_per_fold"],
            "rows_x_trees_per_second_per_core": [
                round(f["train_rows"] * f["trees"] / f["training_seconds"] / params.n_jobs)
                for f in folds
            ],
            "load_average": round(os.getloadavg()[0], 2),
            "prequential": result["prequential"],
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--handbook", action="store_true")
    args = parser.parse_args(argv)
    # Runs of other sizes (or tree counts) made earlier are kept: each entry has its machine.
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results.setdefault("simulated", {})
    for rows in args.rows or [1_000_000, 5_000_000]:
        print(f"simulating and computing features for {rows:,} rows ...", flush=True)
        entry = time_methods(simulated_features(rows), args.trees)
        results["simulated"][str(rows)] = {**entry, "trees": args.trees, "machine": machine()}
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    if args.handbook:
        results["handbook_prequential"] = handbook_prequential()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
