"""Feature-build benchmarks: THE feature SQL on DuckDB beside the pandas reference.

    python -m benchmarks.features [--skip-10m] [--repeat N]

(a) The full handbook (1.75M rows): the 183 raw days are first written, untimed, as a lake in
    the project's raw schema; then ``DuckDBFeatureEngine.build()`` over all of them and the
    pandas reference (``tests/reference_features.py``: read the same files, compute, write
    Parquet) are timed in the same run. Target: DuckDB at least 10x faster.
(b) 10M simulated transactions (``fraud_orchestration.simulator``, 50,000 cards, 10,000
    terminals, 104 days), one ``build()`` over every file for the whole range.
    Targets: under 60 s and under 4 GB peak RSS on 2 cores.

Every timed job runs in its own child process (see ``benchmarks._measure``); DuckDB builds
are repeated and the fastest run is reported. Results go to ``benchmarks/results/features.json``
and a markdown table for BENCHMARKS.md is printed. Generated data lives in ``benchmarks/data/``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks._measure import Measurement, machine, measure
from fraud_orchestration.partitions import day_bounds_seconds
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine
from fraud_orchestration.resources.lake import LocalLake
from fraud_orchestration.simulator import SimulationConfig, iter_days
from tests.reference_features import as_raw_transactions, reference_features

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / "benchmarks" / "data"
RESULTS_PATH = REPO / "benchmarks" / "results" / "features.json"
HANDBOOK_RAW = REPO.parent / "shared" / "datasets" / "fraud-handbook" / "raw"
RAW_TABLE = "raw_transactions"

TARGET_SPEEDUP = 10.0
TARGET_10M_SECONDS = 60.0
TARGET_10M_RSS_GB = 4.0
SIMULATED_MIN_ROWS = 10_000_000
SIMULATION = SimulationConfig(n_customers=50_000, n_terminals=10_000, n_days=104, seed=0)
"""About 96,500 transactions a day: 104 days give just over 10M rows."""


@dataclass(frozen=True)
class RawLake:
    """Raw partitions of consecutive days, one file a day."""

    days: list[date]
    sources: list[str]

    @property
    def window(self) -> tuple[int, int]:
        """Epoch seconds from the first day's start to the last day's end."""
        return day_bounds_seconds(self.days[0])[0], day_bounds_seconds(self.days[-1])[1]


def write_raw_lake(root: Path, days: Iterable[tuple[date, pd.DataFrame]]) -> RawLake:
    """Write each day as a ``raw_transactions`` partition of a local lake."""
    lake = LocalLake(root=str(root))
    written = [
        (
            day,
            lake.write_partition(
                RAW_TABLE,
                day,
                pa.Table.from_pandas(as_raw_transactions(frame), preserve_index=False),
            ),
        )
        for day, frame in days
    ]
    return RawLake(days=[day for day, _ in written], sources=[uri for _, uri in written])


def read_handbook_days(raw_dir: Path) -> Iterator[tuple[date, pd.DataFrame]]:
    for path in sorted(raw_dir.glob("*.parquet")):
        yield date.fromisoformat(path.stem), pd.read_parquet(path)


def duckdb_build(sources: list[str], start: int, end: int, destination: str) -> int:
    # DuckDB spills to ./.tmp beyond its memory limit: keep that inside the git-ignored data.
    os.chdir(DATA_DIR)
    return DuckDBFeatureEngine().build(sources, start, end, destination).rows


def pandas_build(sources: list[str], start: int, end: int, destination: str) -> int:
    """The reference doing the same job as ``build()``: read, compute, keep the window, write."""
    transactions = pa.concat_tables(pq.read_table(source) for source in sources).to_pandas()
    features = reference_features(transactions)
    seconds = transactions["tx_time_seconds"]
    in_window = transactions.loc[(seconds >= start) & (seconds < end), "transaction_id"]
    features.loc[in_window].to_parquet(destination, compression="zstd")
    return len(in_window)


def fastest_build(lake: RawLake, destination: Path, repeat: int) -> dict[str, Any]:
    start, end = lake.window
    runs = [
        measure(duckdb_build, lake.sources, start, end, str(destination)) for _ in range(repeat)
    ]
    return summary(min(runs, key=lambda run: run.seconds), runs)


def summary(best: Measurement, runs: list[Measurement]) -> dict[str, Any]:
    return {
        "rows": best.value,
        "seconds": round(best.seconds, 2),
        "cpu_seconds": round(best.cpu_seconds, 2),
        "peak_rss_gb": round(best.peak_rss_gb, 2),
        "load_average": round(best.load_average, 2),
        "all_seconds": [round(run.seconds, 2) for run in runs],
    }


def handbook_benchmark(repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=DATA_DIR, prefix="handbook-") as tmp:
        root = Path(tmp)
        lake = write_raw_lake(root, read_handbook_days(HANDBOOK_RAW))
        print(f"handbook: {len(lake.days)} raw partitions written; timing DuckDB build() ...")
        duckdb = fastest_build(lake, root / "duckdb.parquet", repeat)
        print(f"handbook: DuckDB {duckdb['seconds']} s; timing the pandas reference ...")
        start, end = lake.window
        reference = measure(pandas_build, lake.sources, start, end, str(root / "pandas.parquet"))
    pandas = summary(reference, [reference])
    if pandas["rows"] != duckdb["rows"]:
        raise RuntimeError(f"row counts differ: DuckDB {duckdb['rows']}, pandas {pandas['rows']}")
    speedup = reference.seconds / min(duckdb["all_seconds"])
    return {
        "partitions": len(lake.days),
        "duckdb": duckdb,
        "pandas_reference": pandas,
        "speedup": round(speedup, 1),
        "cpu_time_ratio": round(pandas["cpu_seconds"] / duckdb["cpu_seconds"], 1),
        "meets_target": speedup >= TARGET_SPEEDUP,
    }


def simulated_lake() -> RawLake:
    """The 10M-row raw lake, generated once and reused while the simulation is unchanged."""
    root = DATA_DIR / "simulated-10m"
    marker = root / "simulation.json"
    wanted = json.dumps(asdict(SIMULATION), default=str, sort_keys=True)
    lake = LocalLake(root=str(root))
    if marker.is_file() and marker.read_text() == wanted:
        days = SIMULATION.days
        return RawLake(days=days, sources=[lake.table_uri(RAW_TABLE, day) for day in days])
    print(f"simulated: generating {SIMULATION.n_days} days into {root} ...")
    written = write_raw_lake(root, iter_days(SIMULATION))
    marker.write_text(wanted)
    return written


def simulated_benchmark(repeat: int) -> dict[str, Any]:
    lake = simulated_lake()
    print("simulated: timing DuckDB build() over every partition ...")
    with tempfile.TemporaryDirectory(dir=DATA_DIR, prefix="features-") as tmp:
        duckdb = fastest_build(lake, Path(tmp) / "duckdb.parquet", repeat)
    if duckdb["rows"] < SIMULATED_MIN_ROWS:
        raise RuntimeError(f"only {duckdb['rows']} simulated rows, wanted {SIMULATED_MIN_ROWS}")
    return {
        "partitions": len(lake.days),
        "simulation": asdict(SIMULATION) | {"start_date": SIMULATION.start_date.isoformat()},
        "duckdb": duckdb,
        "meets_target": duckdb["seconds"] < TARGET_10M_SECONDS
        and duckdb["peak_rss_gb"] < TARGET_10M_RSS_GB,
    }


def markdown(results: dict[str, Any]) -> str:
    def verdict(met: bool) -> str:
        return "yes" if met else "**no**"

    def row(name: str, run: dict[str, Any], target: str = "", met: str = "") -> str:
        return (
            f"| {name} | {run['rows']:,} | {run['seconds']:.1f} s | {run['cpu_seconds']:.1f} s "
            f"| {run['peak_rss_gb']:.2f} GB | {run['load_average']:.1f} | {target} | {met} |"
        )

    cpus = results["machine"]["cpus"]
    lines = [
        f"| Feature build ({cpus} cores) | rows | wall time | CPU time | peak RSS | load "
        "| target | met |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    if handbook := results.get("handbook"):
        lines += [
            row("Handbook, DuckDB `build()`", handbook["duckdb"]),
            row("Handbook, pandas reference", handbook["pandas_reference"]),
            f"| Handbook, pandas / DuckDB | | {handbook['speedup']:.1f}x "
            f"| {handbook['cpu_time_ratio']:.1f}x | | | wall >= {TARGET_SPEEDUP:.0f}x "
            f"| {verdict(handbook['meets_target'])} |",
        ]
    if simulated := results.get("simulated_10m"):
        target = f"< {TARGET_10M_SECONDS:.0f} s, < {TARGET_10M_RSS_GB:.0f} GB"
        met = verdict(simulated["meets_target"])
        lines.append(row("10M simulated, DuckDB `build()`", simulated["duckdb"], target, met))
    lines.append(
        "\nWall time: fastest DuckDB run; the pandas reference runs once. CPU time: user + "
        "system over all threads. Load: the machine's 1-minute load average as the run ended."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-10m", action="store_true", help="only the handbook benchmark")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each DuckDB build")
    args = parser.parse_args(argv)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # Keep the sections this run skips from the previous results.
    results = json.loads(RESULTS_PATH.read_text()) if RESULTS_PATH.is_file() else {}
    results["machine"] = machine()
    if HANDBOOK_RAW.is_dir():
        results["handbook"] = handbook_benchmark(args.repeat)
    else:
        print(f"handbook: skipped, no data set at {HANDBOOK_RAW}")
    if not args.skip_10m:
        results["simulated_10m"] = simulated_benchmark(args.repeat)
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {RESULTS_PATH.relative_to(REPO)}\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
