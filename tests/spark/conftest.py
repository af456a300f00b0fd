"""Spark tests: one local[1] session for the whole test session, data builders, comparison.

Every module here is marked ``spark``; its tests are skipped, with the reason, when PySpark or a
Java runtime is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraud_orchestration.features import FEATURES
from fraud_orchestration.partitions import day_bounds_seconds
from fraud_orchestration.resources.lake import LocalLake
from fraud_orchestration.schema import as_raw_transactions
from fraud_orchestration.simulator import SimulationConfig, generate

RAW_TABLE = "raw_transactions"
TEST_SPARK_CONFIG = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
}


def java_or_skip() -> None:
    pytest.importorskip("pyspark", reason="PySpark is not installed (pip install '.[spark]')")
    pytest.importorskip("dagster_pyspark", reason="dagster-pyspark is not installed")
    java_home = os.environ.get("JAVA_HOME")
    if not (shutil.which("java") or (java_home and Path(java_home, "bin", "java").exists())):
        pytest.skip("no Java runtime (java on PATH or JAVA_HOME): Spark needs Java 17")


@pytest.fixture(scope="session")
def spark_engine() -> Iterator:
    """THE test session's Spark engine: local[1], 3 shuffle partitions, no UI. Its session
    is started once here and reused by every Spark test."""
    java_or_skip()
    from fraud_orchestration.resources.spark_engine import SparkFeatureEngine, stop_spark_sessions

    engine = SparkFeatureEngine(
        master="local[1]", shuffle_partitions=3, driver_memory="1g", spark_config=TEST_SPARK_CONFIG
    )
    engine.spark_session()
    yield engine
    stop_spark_sessions()


# -- data ------------------------------------------------------------------------------------


def write_lake(root: Path, raw: pd.DataFrame) -> dict[date, str]:
    """One ``raw_transactions`` partition per day that has rows: {day: uri}."""
    lake = LocalLake(root=str(root))
    days = raw["tx_datetime"].dt.date
    return {
        day: lake.write_partition(
            RAW_TABLE, day, pa.Table.from_pandas(group.reset_index(drop=True), preserve_index=False)
        )
        for day, group in raw.groupby(days, sort=True)
    }


EDGE_CARD = 9_000_001
EDGE_TERMINAL = 9_000_002
GAP_DAYS = (9, 10, 11, 24)
"""Day indexes with no transactions at all (missing partitions in the look-back)."""


def simulated_transactions(seed: int = 7) -> tuple[pd.DataFrame, date]:
    """Simulated raw transactions with the cases that break window code, and the edge day.

    * same-second ties: copies of 150 transactions for the same card in the same second (other
      terminal, amount, label) and of 150 for the same terminal in the same second (other card);
    * gaps: every transaction of the days ``GAP_DAYS`` is dropped;
    * partition edges: one card and one terminal with transactions at 00:00:00 and 23:59:59 of
      the edge day and exactly 1, 7, 30 (customer windows) and 8, 14, 37 (terminal windows,
      behind the 7-day label delay) days after its 00:00:00, each also one second before.
    """
    config = SimulationConfig(n_customers=300, n_terminals=300, n_days=45, seed=seed)
    events = generate(config)
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(config.start_date)
    day_index = (events["tx_datetime"] - start).dt.days
    events = events[~day_index.isin(GAP_DAYS)].reset_index(drop=True)
    next_id = int(events["transaction_id"].max()) + 1

    card_ties = events.sample(150, random_state=seed).assign(
        terminal_id=lambda f: rng.integers(0, config.n_terminals, len(f)),
        tx_amount=lambda f: rng.uniform(1, 150, len(f)).round(2),
        tx_fraud=lambda f: rng.integers(0, 2, len(f)),
    )
    terminal_ties = events.sample(150, random_state=seed + 1).assign(
        customer_id=lambda f: rng.integers(0, config.n_customers, len(f)),
        tx_amount=lambda f: rng.uniform(1, 150, len(f)).round(2),
        tx_fraud=lambda f: rng.integers(0, 2, len(f)),
    )
    edge_day = config.start_date + timedelta(days=2)
    midnight = pd.Timestamp(edge_day)
    offsets = [pd.Timedelta(0), pd.Timedelta(hours=23, minutes=59, seconds=59)]
    for days in (1, 7, 30, 8, 14, 37):
        offsets += [pd.Timedelta(days=days), pd.Timedelta(days=days) - pd.Timedelta(seconds=1)]
    edges = pd.DataFrame(
        {
            "tx_datetime": [midnight + offset for offset in offsets],
            "customer_id": EDGE_CARD,
            "terminal_id": EDGE_TERMINAL,
            "tx_amount": np.arange(1, len(offsets) + 1) * 10.0,
            "tx_fraud": [1, 0] * (len(offsets) // 2),
            "tx_fraud_scenario": 0,
        }
    )
    extra = pd.concat([card_ties, terminal_ties, edges], ignore_index=True)
    extra["transaction_id"] = np.arange(next_id, next_id + len(extra))
    events = pd.concat([events, extra], ignore_index=True)
    return as_raw_transactions(events), edge_day


def window_of_days(first: date, last: date) -> tuple[int, int]:
    return day_bounds_seconds(first)[0], day_bounds_seconds(last)[1]


# -- comparison ------------------------------------------------------------------------------


def assert_same_features(expected: pd.DataFrame, actual: pd.DataFrame) -> None:
    """DuckDB's table (``expected``) against Spark's: same columns, order, dtypes and rows,
    every value bit for bit (averages and ratios too: see ``Feature.kind``), and every
    feature of ``FEATURES`` produced."""
    assert list(actual.columns) == list(expected.columns)
    assert actual.dtypes.to_dict() == expected.dtypes.to_dict()
    assert len(actual) == len(expected) > 0
    assert np.array_equal(actual["transaction_id"], expected["transaction_id"]), "row order"
    missing = [feature.name for feature in FEATURES if feature.name not in expected.columns]
    assert not missing, f"FEATURES not produced by the SQL: {missing}"
    differing = {}
    for column in expected.columns:
        ours, theirs = expected[column].to_numpy(), actual[column].to_numpy()
        same = theirs == ours
        if not same.all():
            rows = np.flatnonzero(~same)
            differing[column] = (
                f"{len(rows)} rows, e.g. id {expected['transaction_id'].iloc[rows[0]]}: "
                f"{ours[rows[0]]!r} vs {theirs[rows[0]]!r}"
            )
    assert not differing, f"DuckDB and Spark disagree: {differing}"


def read_features(path: str | Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def assert_same_parquet_types(expected: str | Path, actual: str | Path) -> None:
    """Same column names, order and Arrow types (nullability aside: Spark marks the columns
    it knows are never null as required, DuckDB marks none)."""
    ours, theirs = pq.read_schema(expected), pq.read_schema(actual)
    assert theirs.names == ours.names
    assert [field.type for field in theirs] == [field.type for field in ours]
