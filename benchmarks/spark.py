"""DuckDB and Spark (local[*]) side by side: the full-range feature build of a raw lake.

    python -m benchmarks.spark [--sizes handbook,10m,30m] [--timeout 900]
                               [--engines duckdb,spark] [--skip-reason TEXT]
                               [--shuffle-partitions 8] [--driver-memory 3g] [--report]

Data sets, each a raw lake of one Parquet file a day in the project's raw schema, written
untimed under ``benchmarks/data/`` and reused while their recipe is unchanged:

* ``handbook``: the Fraud Detection Handbook's 183 days (1.75M transactions);
* ``10m``: 10M simulated transactions (50,000 cards, 10,000 terminals, 104 days);
* ``30m``: 30M simulated transactions (150,000 cards, 30,000 terminals, 104 days: the same
  density per card and per terminal as ``10m``, three times as many of each);
* ``<name>-<N>d``: the first N days of one of those lakes (e.g. ``10m-21d``, about 2M rows at
  the density of ``10m``).

Each engine builds the features of every row (one ``build()`` over all files for the whole
range) in a fresh child process, so each figure is its own:

* DuckDB: wall time of ``build()``; peak RSS = the child's ``ru_maxrss``.
* Spark: start-up (``SparkSession`` creation: the JVM) timed apart from ``build()`` (the
  first build of a fresh JVM, as a Dagster step runs it). Peak RSS is the Python driver plus
  the JVM: the JVM's exact peak is its ``ru_maxrss`` once reaped, and the peak of their sum is
  sampled with psutil every 0.2 s.

A job that runs past ``--timeout`` seconds is stopped and reported as such. Row counts must
agree; on the handbook the two feature tables are also compared value by value (untimed).
Results go to ``benchmarks/results/spark.json``; a markdown table is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fraud_orchestration.features import FEATURES
from fraud_orchestration.partitions import day_bounds_seconds
from fraud_orchestration.resources.lake import LocalLake
from fraud_orchestration.schema import as_raw_transactions
from fraud_orchestration.simulator import (
    SimulationConfig,
    default_handbook_dir,
    handbook_days,
    iter_days,
    read_handbook_day,
)

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / "benchmarks" / "data"
RESULTS_PATH = REPO / "benchmarks" / "results" / "spark.json"
RAW_TABLE = "raw_transactions"
SIMULATIONS = {
    "10m": SimulationConfig(n_customers=50_000, n_terminals=10_000, n_days=104, seed=0),
    "30m": SimulationConfig(n_customers=150_000, n_terminals=30_000, n_days=104, seed=0),
}
SAMPLE_SECONDS = 0.2


# -- data (untimed) ----------------------------------------------------------------------------


def raw_lake(size: str) -> tuple[list[str], int, int]:
    """The lake's files and full range, written once per recipe. ``<name>-<N>d`` is the
    first N days of lake ``<name>`` (same density per card and terminal, fewer rows)."""
    name, _, suffix = size.partition("-")
    sources, start, end = _whole_lake(name)
    if suffix:
        days = int(suffix.removesuffix("d"))
        return sources[:days], start, start + days * 86_400
    return sources, start, end


def _whole_lake(name: str) -> tuple[list[str], int, int]:
    root = DATA_DIR / f"spark-{name}"
    if name == "handbook":
        handbook = default_handbook_dir(REPO)
        days = handbook_days(handbook)
        recipe = {"handbook": str(handbook), "days": len(days)}
        frames = ((day, read_handbook_day(handbook, day)) for day in days)
    else:
        config = SIMULATIONS[name]
        days = config.days
        recipe = asdict(config) | {"start_date": config.start_date.isoformat()}
        frames = iter_days(config)
    lake = LocalLake(root=str(root))
    marker = root / "recipe.json"
    wanted = json.dumps(recipe, sort_keys=True)
    if not (marker.is_file() and marker.read_text() == wanted):
        shutil.rmtree(root, ignore_errors=True)
        print(f"{name}: writing {len(days)} raw partitions into {root} (untimed) ...", flush=True)
        for day, frame in frames:
            table = pa.Table.from_pandas(as_raw_transactions(frame), preserve_index=False)
            lake.write_partition(RAW_TABLE, day, table)
        marker.write_text(wanted)
    first: date = days[0]
    last: date = days[-1]
    sources = [lake.table_uri(RAW_TABLE, day) for day in days]
    return sources, day_bounds_seconds(first)[0], day_bounds_seconds(last)[1]


# -- jobs (each in a fresh child process) ------------------------------------------------------


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        process = psutil.Process(pid)
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for member in members:
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total


def _sampler(stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], _tree_rss(os.getpid()))
        stop.wait(SAMPLE_SECONDS)


def duckdb_job(sources: list[str], start: int, end: int, destination: str) -> dict[str, Any]:
    from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine

    os.chdir(DATA_DIR)  # DuckDB spills to ./.tmp beyond its memory limit
    started = time.perf_counter()
    rows = DuckDBFeatureEngine().build(sources, start, end, destination).rows
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "rows": rows,
        "build_seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 2),
    }


def spark_job(
    sources: list[str],
    start: int,
    end: int,
    destination: str,
    shuffle_partitions: int,
    driver_memory: str | None,
) -> dict[str, Any]:
    from pyspark import SparkContext

    from fraud_orchestration.resources.spark_engine import SparkFeatureEngine

    os.chdir(DATA_DIR)
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=_sampler, args=(stop, peak), daemon=True)
    sampler.start()
    engine = SparkFeatureEngine(
        shuffle_partitions=shuffle_partitions,
        **({"driver_memory": driver_memory} if driver_memory else {}),
        spark_config={
            "spark.ui.enabled": "false",
            "spark.local.dir": str(DATA_DIR / ".spark-tmp"),
        },
    )
    started = time.perf_counter()
    session = engine.spark_session()
    startup = time.perf_counter() - started
    started = time.perf_counter()
    rows = engine.build(sources, start, end, destination).rows
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    parallelism = session.sparkContext.defaultParallelism
    # Stop the JVM and reap it, so that RUSAGE_CHILDREN holds its peak RSS.
    gateway = SparkContext._gateway
    session.stop()
    if gateway is not None and getattr(gateway, "proc", None) is not None:
        try:
            gateway.shutdown()
        finally:
            gateway.proc.stdin.close()
            gateway.proc.wait(timeout=120)
    own = resource.getrusage(resource.RUSAGE_SELF)
    jvm = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "rows": rows,
        "startup_seconds": round(startup, 2),
        "build_seconds": round(seconds, 2),
        "total_seconds": round(startup + seconds, 2),
        "cpu_seconds": round(own.ru_utime + own.ru_stime + jvm.ru_utime + jvm.ru_stime, 1),
        "driver_python_peak_rss_gb": round(own.ru_maxrss * 1024 / 1e9, 2),
        "jvm_peak_rss_gb": round(jvm.ru_maxrss * 1024 / 1e9, 2),
        "peak_rss_gb": round(peak[0] / 1e9, 2),
        "default_parallelism": parallelism,
        "shuffle_partitions": shuffle_partitions,
        "driver_memory": engine.driver_memory,
    }


def _run(connection: Any, job: Any, args: tuple) -> None:
    try:
        connection.send(("ok", job(*args)))
    except BaseException as error:  # report any failure to the parent
        connection.send(("error", f"{type(error).__name__}: {error}"[:2000]))
    connection.close()


def measure(job: Any, *args: Any, timeout: float) -> dict[str, Any]:
    """``job(*args)`` in a fresh spawned child; stopped after ``timeout`` seconds."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_run, args=(sender, job, args))
    started = time.perf_counter()
    child.start()
    sender.close()
    if not receiver.poll(timeout):
        child.kill()  # its JVM, if any, exits when its stdin pipe from the child breaks
        child.join()
        return {"timed_out_after_seconds": round(time.perf_counter() - started)}
    try:
        status, value = receiver.recv()
    except EOFError:
        status, value = "error", f"the child died with exit code {child.exitcode}"
    child.join()
    return value if status == "ok" else {"error": value}


# -- comparison (untimed) ----------------------------------------------------------------------


def compare(duckdb_path: Path, spark_path: Path) -> dict[str, Any]:
    """The columns that are not equal bit for bit (none should be: see ``Feature.kind``), and
    the largest relative difference of the averages and ratios."""
    ours, theirs = pq.read_table(duckdb_path), pq.read_table(spark_path)
    kinds = {feature.name: feature.kind for feature in FEATURES}
    same_types = [f.type for f in ours.schema] == [f.type for f in theirs.schema]
    differing, worst = [], 0.0
    for name in ours.column_names:
        a, b = ours[name].to_numpy(), theirs[name].to_numpy()
        if kinds.get(name) in ("average", "ratio"):
            scale = np.maximum(np.abs(a), np.abs(b))
            relative = np.divide(np.abs(a - b), scale, out=np.zeros_like(a), where=scale > 0)
            worst = max(worst, float(relative.max(initial=0.0)))
        if not np.array_equal(a, b):
            differing.append(name)
    return {
        "same_column_names_and_types": same_types and ours.column_names == theirs.column_names,
        "differing_columns": differing,
        "max_relative_difference": worst,
    }


# -- report ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import duckdb
    import pyspark

    return {
        "cpus": len(os.sched_getaffinity(0)),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "duckdb": duckdb.__version__,
        "pyspark": pyspark.__version__,
    }


def crossover(runs: dict[str, Any]) -> str:
    measured = [
        (name, run)
        for name, run in runs.items()
        if "build_seconds" in run.get("duckdb", {}) and "build_seconds" in run.get("spark", {})
    ]
    if not measured:
        return "nothing to compare"
    faster = [
        name
        for name, run in measured
        if run["spark"]["build_seconds"] < run["duckdb"]["build_seconds"]
    ]
    if not faster:
        largest = max(measured, key=lambda item: item[1]["rows"])
        ratio = largest[1]["spark"]["build_seconds"] / largest[1]["duckdb"]["build_seconds"]
        return (
            f"no crossover: DuckDB is faster on every size measured (Spark's build alone "
            f"{ratio:.1f}x DuckDB's at {largest[1]['rows']:,} rows, start-up excluded)"
        )
    return f"Spark's build is faster from: {', '.join(faster)}"


def markdown(results: dict[str, Any]) -> str:
    cpus = results["machine"]["cpus"]
    lines = [
        f"| Full-range build ({cpus} cores) | rows | DuckDB build | DuckDB CPU | DuckDB peak RSS "
        "| Spark start-up | Spark build | Spark CPU (incl. start-up) "
        "| Spark peak RSS (driver + JVM) | Spark / DuckDB build |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in results["runs"].items():
        duck, spark = run.get("duckdb", {}), run.get("spark", {})

        def cell(figures: dict[str, Any], key: str, unit: str) -> str:
            if key in figures:
                return f"{figures[key]:.1f} {unit}" if unit == "s" else f"{figures[key]:.2f} {unit}"
            if "timed_out_after_seconds" in figures:
                return f"stopped after {figures['timed_out_after_seconds']} s"
            if "skipped" in figures:
                return "not run"
            return "failed" if "error" in figures else ""

        ratio = (
            f"{spark['build_seconds'] / duck['build_seconds']:.1f}x"
            if "build_seconds" in spark and "build_seconds" in duck
            else ""
        )
        lines.append(
            f"| {name} | {run.get('rows', 0):,} | {cell(duck, 'build_seconds', 's')} "
            f"| {cell(duck, 'cpu_seconds', 's')} | {cell(duck, 'peak_rss_gb', 'GB')} "
            f"| {cell(spark, 'startup_seconds', 's')} | {cell(spark, 'build_seconds', 's')} "
            f"| {cell(spark, 'cpu_seconds', 's')} | {cell(spark, 'peak_rss_gb', 'GB')} "
            f"| {ratio} |"
        )
    lines.append("")
    lines.append(f"Crossover: {results['crossover']}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="handbook,10m,30m",
        help="handbook, 10m, 30m; 10m-21d = its first 21 days",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per engine job")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--driver-memory", help="spark.driver.memory (the engine's default)")
    parser.add_argument("--engines", default="duckdb,spark", help="which engines to run")
    parser.add_argument("--skip-reason", help="recorded for the engines left out")
    parser.add_argument("--report", action="store_true", help="only print the last results")
    args = parser.parse_args(argv)
    if args.report:
        print(markdown(json.loads(RESULTS_PATH.read_text())))
        return
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS_PATH.read_text()) if RESULTS_PATH.is_file() else {}
    results["machine"] = machine()
    runs = results.setdefault("runs", {})
    for name in args.sizes.split(","):
        if name == "handbook" and default_handbook_dir(REPO) is None:
            print("handbook: skipped, no data set next to the checkout")
            continue
        sources, start, end = raw_lake(name)
        with tempfile.TemporaryDirectory(dir=DATA_DIR, prefix="spark-out-") as tmp:
            out = Path(tmp)
            duck = spark = {"skipped": args.skip_reason or f"not in --engines {args.engines}"}
            if "duckdb" in args.engines:
                print(f"{name}: DuckDB build() ...", flush=True)
                duck = measure(
                    duckdb_job,
                    sources,
                    start,
                    end,
                    str(out / "duckdb.parquet"),
                    timeout=args.timeout,
                )
                print(f"{name}: DuckDB {duck}", flush=True)
            if "spark" in args.engines:
                print(f"{name}: Spark local[*] start-up + build() ...", flush=True)
                spark = measure(
                    spark_job,
                    sources,
                    start,
                    end,
                    str(out / "spark.parquet"),
                    args.shuffle_partitions,
                    args.driver_memory,
                    timeout=args.timeout,
                )
                print(f"{name}: Spark {spark}", flush=True)
            # An engine left out of this run keeps its figures from an earlier run.
            previous = runs.get(name, {})
            if "skipped" in duck and "duckdb" in previous:
                duck = previous["duckdb"]
            if "skipped" in spark and "spark" in previous:
                spark = previous["spark"]
            run = {
                "rows": duck.get("rows", spark.get("rows", 0)),
                "partitions": len(sources),
                "duckdb": duck,
                "spark": spark,
                "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            }
            if "rows" in duck and "rows" in spark and duck["rows"] != spark["rows"]:
                raise RuntimeError(f"{name}: row counts differ: {duck['rows']} vs {spark['rows']}")
            if name == "handbook" and "rows" in duck and "rows" in spark:
                run["parity"] = compare(out / "duckdb.parquet", out / "spark.parquet")
                print(f"{name}: parity {run['parity']}", flush=True)
        runs[name] = run
        results["crossover"] = crossover(runs)
        RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_PATH.write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(DATA_DIR / ".spark-tmp", ignore_errors=True)
    print(f"\nwritten {RESULTS_PATH.relative_to(REPO)}\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
