"""The Spark engine behind the unchanged pipeline: ``feature_ingestion`` with the Spark engine
bound to ``feature_engine`` writes the same feature partitions as with DuckDB, and the
feature expectations (Great Expectations) pass on them."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, Definitions

from fraud_orchestration.definitions import build_definitions
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine
from fraud_orchestration.settings import load_settings
from tests.conftest import as_lines, good_day, land_lines
from tests.spark.conftest import assert_same_features

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DAYS = [date(2018, 4, 1) + timedelta(days=i) for i in range(3)]


def _run(home: Path, engine, tmp_path: Path) -> list[pd.DataFrame]:
    for number, day in enumerate(DAYS):
        land_lines(home, day, as_lines(good_day(day, 300, first_id=number * 1000)))
    base = build_definitions(load_settings({"FRAUD_HOME": str(home)}))
    defs = Definitions(
        assets=base.assets,
        jobs=base.jobs,
        resources={**base.resources, "feature_engine": engine},
    )
    job = defs.resolve_job_def("feature_ingestion")
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / f"dagster-{home.name}")) as instance:
        for day in DAYS:
            result = job.execute_in_process(partition_key=day.isoformat(), instance=instance)
            assert result.success
            checks = result.get_asset_check_evaluations()
            assert checks and all(check.passed for check in checks)
    return [
        pd.read_parquet(home / f"lake/transaction_features/date={day}/data.parquet") for day in DAYS
    ]


def test_feature_ingestion_with_spark_matches_duckdb(spark_engine, tmp_path) -> None:
    expected = _run(tmp_path / "duckdb", DuckDBFeatureEngine(threads=1), tmp_path)
    actual = _run(tmp_path / "spark", spark_engine, tmp_path)
    for ours, theirs in zip(expected, actual, strict=True):
        assert_same_features(ours, theirs)
