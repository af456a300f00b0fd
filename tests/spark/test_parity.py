"""DuckDB and Spark run THE feature SQL to identical feature tables (every feature of FEATURES).

Counts, flags and raw values must be equal, averages and ratios within 1e-9 relative (the
engines sum in different orders). Inputs: simulated data with same-second ties, missing days
and rows on partition and window edges; and 45 days of the handbook data set.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from fraud_orchestration.partitions import lookback_days
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine
from fraud_orchestration.schema import as_raw_transactions
from fraud_orchestration.simulator import default_handbook_dir, handbook_days, read_handbook_day
from tests.spark.conftest import (
    EDGE_CARD,
    EDGE_TERMINAL,
    assert_same_features,
    assert_same_parquet_types,
    read_features,
    simulated_transactions,
    window_of_days,
    write_lake,
)

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[2]
HANDBOOK_TEST_DAYS = 45
"""A subset of the handbook's 183 days keeps CI time low; 45 days cover the 37-day look-back."""


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, object]:
    return simulated_transactions()


def test_the_simulated_data_has_the_hard_cases(simulated) -> None:
    transactions, edge_day = simulated
    assert transactions.duplicated(["customer_id", "tx_time_seconds"]).sum() >= 100
    assert transactions.duplicated(["terminal_id", "tx_time_seconds"]).sum() >= 100
    days = set(transactions["tx_datetime"].dt.date)
    first, last = min(days), max(days)
    assert len(days) < (last - first).days + 1, "no missing day"
    edges = transactions[transactions["customer_id"] == EDGE_CARD]
    assert (edges["terminal_id"] == EDGE_TERMINAL).all()
    assert set(edges["tx_time_seconds"] % 86_400) == {0, 86_399}


def test_compute_matches_duckdb_on_simulated_data(spark_engine, simulated) -> None:
    transactions, _ = simulated
    expected = DuckDBFeatureEngine(threads=1).compute(transactions)
    actual = spark_engine.compute(transactions)
    assert_same_features(expected, actual)


def test_build_matches_duckdb_on_simulated_partitions(spark_engine, simulated, tmp_path) -> None:
    """Daily builds as the asset runs them: a day plus its 37-day look-back, some days missing.
    The days chosen hold the edge rows exactly 1, 7 (+7), 30 (+7) days after the edge day."""
    transactions, edge_day = simulated
    uris = write_lake(tmp_path / "lake", transactions)
    for offset in (1, 8, 30, 37):
        day = edge_day + timedelta(days=offset)
        sources = [uris[d] for d in lookback_days(day) if d in uris]
        start, end = window_of_days(day, day)
        duckdb = DuckDBFeatureEngine(threads=1).build(
            sources, start, end, str(tmp_path / f"duckdb-{day}.parquet")
        )
        spark = spark_engine.build(sources, start, end, str(tmp_path / f"spark-{day}.parquet"))
        assert spark.rows == duckdb.rows > 0
        assert_same_parquet_types(duckdb.uri, spark.uri)
        assert_same_features(read_features(duckdb.uri), read_features(spark.uri))


def test_build_matches_duckdb_over_the_whole_simulated_range(
    spark_engine, simulated, tmp_path
) -> None:
    transactions, _ = simulated
    uris = write_lake(tmp_path / "lake", transactions)
    start, end = window_of_days(min(uris), max(uris))
    duckdb = DuckDBFeatureEngine(threads=1).build(
        list(uris.values()), start, end, str(tmp_path / "duckdb.parquet")
    )
    spark = spark_engine.build(list(uris.values()), start, end, str(tmp_path / "spark.parquet"))
    assert spark.rows == duckdb.rows == len(transactions)
    assert_same_parquet_types(duckdb.uri, spark.uri)
    assert_same_features(read_features(duckdb.uri), read_features(spark.uri))


@pytest.mark.handbook
@pytest.mark.slow
def test_build_matches_duckdb_on_handbook_days(spark_engine, tmp_path) -> None:
    """The first 45 handbook days as a raw lake; one build of the whole range per engine."""
    handbook = default_handbook_dir(REPO)
    if handbook is None or not (handbook / "raw").is_dir():
        pytest.skip(f"the handbook data set is not at {REPO.parent / 'shared/datasets'}")
    days = handbook_days(handbook)[:HANDBOOK_TEST_DAYS]
    raw = as_raw_transactions(
        pd.concat([read_handbook_day(handbook, day) for day in days], ignore_index=True)
    )
    uris = write_lake(tmp_path / "lake", raw)
    start, end = window_of_days(days[0], days[-1])
    sources = [uris[day] for day in days]
    duckdb = DuckDBFeatureEngine().build(sources, start, end, str(tmp_path / "duckdb.parquet"))
    spark = spark_engine.build(sources, start, end, str(tmp_path / "spark.parquet"))
    assert spark.rows == duckdb.rows == len(raw)
    assert_same_parquet_types(duckdb.uri, spark.uri)
    assert_same_features(read_features(duckdb.uri), read_features(spark.uri))
