"""End-to-end wall time: the nightly retraining job and the daily ingestion job on a world.

    python -m benchmarks.end_to_end [--world 1.75m] [--world 10m] [--days-budget N]

A world is simulated and landed (``fraud_orchestration.simulator``), then brought to the state
a running deployment would be in the night before its last day:

* ``raw_transactions`` for the 37 look-back days before those 28 and the 28 themselves (older
  days are read by nothing that is timed here);
* ``feature_ingestion`` (raw → features → offline store) for the 28 days the default
  training windows need (14 train, 7 delay, 7 test).

Both setup phases run through the project's own jobs and are reported per partition, but are
not part of the end-to-end figure. Then the two jobs are timed:

1. ``nightly_retraining`` (training set → model → gate → endpoint), cut off at the last day;
2. ``daily_ingestion`` for the last day (raw → features → offline store → scores → drift).

Only 28 days are in the offline store, so the retraining runs with ``allow_partial_lookback``:
the guard it lifts is about offline days, and every feature here was still computed from a
full 37-day raw look-back. Where the time goes comes from the runs' event logs
(``instance.get_run_step_stats``). Results go to ``benchmarks/results/end_to_end.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from dagster import AssetKey, DagsterInstance, Definitions

from benchmarks._measure import machine
from fraud_orchestration.partitions import LOOKBACK_DAYS
from fraud_orchestration.simulator import SimulationConfig, simulate

RESULTS = Path(__file__).parent / "results" / "end_to_end.json"
TRAINING_WINDOW_DAYS = 14 + 7 + 7
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

WORLDS = {
    # the handbook's shape: 5,000 cards, 10,000 terminals, 183 days ≈ 1.75M transactions
    "1.75m": SimulationConfig(n_customers=5_000, n_terminals=10_000, n_days=183, seed=0),
    # benchmarks.features' 10M world: 50,000 cards, 10,000 terminals, 104 days ≈ 10.05M
    "10m": SimulationConfig(n_customers=50_000, n_terminals=10_000, n_days=104, seed=0),
}


@dataclass
class Timed:
    seconds: float
    load_average: float
    run_id: str | None = None


def _timed(work) -> tuple[Any, Timed]:
    started = time.perf_counter()
    value = work()
    return value, Timed(time.perf_counter() - started, os.getloadavg()[0])


def step_seconds(instance: DagsterInstance, run_id: str) -> dict[str, float]:
    """Each step's duration, from the run's event log."""
    return {
        stats.step_key: round(stats.end_time - stats.start_time, 2)
        for stats in instance.get_run_step_stats(run_id)
        if stats.start_time is not None and stats.end_time is not None
    }


def _execute(defs: Definitions, instance: DagsterInstance, job: str, **kwargs):
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, **kwargs
    )
    if not result.success:
        raise RuntimeError(f"{job} {kwargs.get('partition_key', '')} failed")
    return result


def run_world(name: str, config: SimulationConfig) -> dict[str, Any]:
    from fraud_orchestration.definitions import build_definitions
    from fraud_orchestration.settings import load_settings

    with tempfile.TemporaryDirectory(prefix=f"e2e-{name}-", dir=_scratch()) as scratch:
        home = Path(scratch) / "home"
        summary, simulated = _timed(lambda: simulate(config, home))
        rows = summary.n_transactions
        days: list[date] = config.days
        last = days[-1]
        print(f"[{name}] simulated {rows:,} transactions in {simulated.seconds:.0f} s", flush=True)
        settings = load_settings(
            {"FRAUD_HOME": str(home), "FRAUD_ENDPOINT_PORT": str(_free_port())}
        )
        defs = build_definitions(settings)
        try:
            with DagsterInstance.ephemeral(tempdir=str(Path(scratch) / "dagster")) as instance:
                raw_job = defs.resolve_job_def("feature_ingestion")
                window = days[-1 - TRAINING_WINDOW_DAYS : -1]
                raw_days = days[max(0, len(days) - 1 - TRAINING_WINDOW_DAYS - LOOKBACK_DAYS) : -1]
                _, raw = _timed(
                    lambda: [
                        raw_job.execute_in_process(
                            instance=instance,
                            partition_key=day.isoformat(),
                            asset_selection=[AssetKey("raw_transactions")],
                            run_config=QUIET,
                        )
                        for day in raw_days
                    ]
                )
                print(f"[{name}] raw backfill {raw.seconds:.0f} s", flush=True)
                _, features = _timed(
                    lambda: [
                        _execute(
                            defs,
                            instance,
                            "feature_ingestion",
                            partition_key=day.isoformat(),
                            run_config=QUIET,
                        )
                        for day in window
                    ]
                )
                print(f"[{name}] feature backfill {features.seconds:.0f} s", flush=True)
                retraining_run, retraining = _timed(
                    lambda: _execute(
                        defs,
                        instance,
                        "nightly_retraining",
                        run_config={
                            **QUIET,
                            "ops": {"training_set": {"config": {"allow_partial_lookback": True}}},
                        },
                    )
                )
                print(f"[{name}] retraining {retraining.seconds:.0f} s", flush=True)
                daily_run, daily = _timed(
                    lambda: _execute(
                        defs,
                        instance,
                        "daily_ingestion",
                        partition_key=last.isoformat(),
                        run_config=QUIET,
                    )
                )
                print(f"[{name}] daily ingestion {daily.seconds:.0f} s", flush=True)
                return {
                    "transactions": rows,
                    "days": len(days),
                    "cards": config.n_customers,
                    "transactions_last_day": summary.days[-1].n_transactions,
                    "simulate_and_land_seconds": round(simulated.seconds, 1),
                    "setup_raw_backfill": _per_partition(raw, len(raw_days)),
                    "setup_feature_backfill": _per_partition(features, len(window)),
                    "nightly_retraining": {
                        "seconds": round(retraining.seconds, 1),
                        "load_average": round(retraining.load_average, 2),
                        "steps": step_seconds(instance, retraining_run.run_id),
                    },
                    "daily_ingestion": {
                        "partition": last.isoformat(),
                        "seconds": round(daily.seconds, 1),
                        "load_average": round(daily.load_average, 2),
                        "steps": step_seconds(instance, daily_run.run_id),
                    },
                    "end_to_end_seconds": round(retraining.seconds + daily.seconds, 1),
                }
        finally:
            defs.resources["endpoint"].stop()


def _per_partition(timed: Timed, partitions: int) -> dict[str, Any]:
    return {
        "partitions": partitions,
        "seconds": round(timed.seconds, 1),
        "seconds_per_partition": round(timed.seconds / max(partitions, 1), 2),
        "load_average": round(timed.load_average, 2),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _scratch() -> str:
    """Large worlds need several GB of landing files; prefer the repository's data folder."""
    folder = Path(__file__).parent / "data"
    folder.mkdir(exist_ok=True)
    return str(folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", action="append", choices=sorted(WORLDS))
    parser.add_argument(
        "--customers", type=int, help="override the cards of every chosen world (smaller runs)"
    )
    parser.add_argument("--days", type=int, help="override the days of every chosen world")
    args = parser.parse_args(argv)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = machine()
    for name in args.world or ["1.75m", "10m"]:
        config = WORLDS[name]
        overrides = {
            key: value
            for key, value in (("n_customers", args.customers), ("n_days", args.days))
            if value
        }
        if overrides:
            config = SimulationConfig(**{**config.__dict__, **overrides})
        world = run_world(name, config)
        world["overrides"] = overrides
        results.setdefault("worlds", {})[name] = world
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps({name: world}, indent=2), flush=True)


if __name__ == "__main__":
    main()
