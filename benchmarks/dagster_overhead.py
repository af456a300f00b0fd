"""Dagster's own cost per asset: the in-process executor beside the multiprocess executor.

    python -m benchmarks.dagster_overhead [--assets N] [--repeat R]

A chain of N trivial assets (each adds one to its parent's value; the work is nothing) is
materialized on one ``DagsterInstance`` in a temporary folder, with each executor, in
interleaved rounds (best of R). With no work, the job's wall time is all overhead, so

    overhead per asset = (job wall time - work) / assets,   work = 0.

The multiprocess executor starts one Python process per step, which imports the job's code;
here that code is this module (small), so the figure is the floor of what a step process
costs (it already imports Dagster, DuckDB and pandas). The project's steps import the whole
code location, whose import time in a fresh interpreter is reported beside it. Results go to
``benchmarks/results/dagster_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dagster import (
    AssetIn,
    AssetsDefinition,
    DagsterInstance,
    Definitions,
    asset,
    define_asset_job,
    execute_job,
    in_process_executor,
    multiprocess_executor,
    reconstructable,
)

from benchmarks._measure import machine

RESULTS = Path(__file__).parent / "results" / "dagster_overhead.json"
DEFAULT_ASSETS = 20
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def chain(length: int) -> list[AssetsDefinition]:
    """``step_0 → step_1 → … → step_{length-1}``, each returning its parent's value + 1."""

    @asset(name="step_0")
    def first() -> int:
        return 0

    assets = [first]
    for index in range(1, length):

        def body(parent: int) -> int:
            return parent + 1

        body.__name__ = f"step_{index}"
        assets.append(
            asset(name=f"step_{index}", ins={"parent": AssetIn(key=f"step_{index - 1}")})(body)
        )
    return assets


def definitions(length: int = DEFAULT_ASSETS) -> Definitions:
    """Importable by name so that multiprocess step workers can rebuild the job."""
    assets = chain(length)
    return Definitions(
        assets=assets,
        jobs=[
            define_asset_job("chain_in_process", executor_def=in_process_executor),
            define_asset_job(
                "chain_multiprocess",
                executor_def=multiprocess_executor.configured({"max_concurrent": 2}),
            ),
        ],
    )


defs = definitions(int(os.environ.get("FRAUD_BENCH_CHAIN", DEFAULT_ASSETS)))


def import_seconds(module: str) -> float:
    """Wall time of ``import module`` in a fresh interpreter (what every step process pays)."""
    code = f"import time; s = time.perf_counter(); import {module}; print(time.perf_counter() - s)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def run_job(instance: DagsterInstance, name: str) -> float:
    """Wall time of one materialization of the chain through ``name``."""
    job = reconstructable(_JOBS[name])
    started = time.perf_counter()
    with execute_job(job, instance=instance, run_config=QUIET) as result:
        assert result.success, name
    return time.perf_counter() - started


def _chain_in_process():
    return defs.resolve_job_def("chain_in_process")


def _chain_multiprocess():
    return defs.resolve_job_def("chain_multiprocess")


_JOBS = {"chain_in_process": _chain_in_process, "chain_multiprocess": _chain_multiprocess}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=DEFAULT_ASSETS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ["FRAUD_BENCH_CHAIN"] = str(args.assets)
    global defs
    defs = definitions(args.assets)
    best: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="dagster-overhead-") as scratch:
        (Path(scratch) / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        with DagsterInstance.from_config(scratch) as instance:
            for _ in range(args.repeat):  # interleaved, so load bursts hit both executors
                for name in _JOBS:
                    seconds = run_job(instance, name)
                    if seconds < best.get(name, (float("inf"), 0.0))[0]:
                        best[name] = (seconds, os.getloadavg()[0])
    per_asset = {name: seconds / args.assets for name, (seconds, _) in best.items()}
    location_import = import_seconds("fraud_orchestration.definitions")
    result: dict[str, Any] = {
        "machine": machine(),
        "assets": args.assets,
        "repeat": args.repeat,
        "job_seconds": {name: round(seconds, 3) for name, (seconds, _) in best.items()},
        "load_average_at_best": {name: round(load, 2) for name, (_, load) in best.items()},
        "overhead_per_asset_seconds": {name: round(s, 4) for name, s in per_asset.items()},
        "ratio_multiprocess_over_in_process": round(
            per_asset["chain_multiprocess"] / per_asset["chain_in_process"], 1
        ),
        "code_location_import_seconds": round(location_import, 2),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
