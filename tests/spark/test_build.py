"""``SparkFeatureEngine.build()``: one Parquet file, published atomically; session settings."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import fraud_orchestration.resources.spark_engine as spark_engine_module
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine
from tests.spark.conftest import simulated_transactions, window_of_days, write_lake

pytestmark = pytest.mark.spark

OLD_ROWS = 3


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> tuple[list[str], int, int]:
    transactions, _ = simulated_transactions(seed=11)
    uris = write_lake(tmp_path_factory.mktemp("lake"), transactions)
    start, end = window_of_days(min(uris), max(uris))
    return list(uris.values()), start, end


@pytest.fixture
def destination(tmp_path: Path) -> Path:
    """An existing feature file with OLD_ROWS rows, as a previous build left it."""
    path = tmp_path / "lake" / "transaction_features" / "date=2018-05-01" / "data.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"transaction_id": list(range(OLD_ROWS))}), path)
    return path


def test_build_replaces_the_destination_and_leaves_nothing_else(
    spark_engine, lake, destination
) -> None:
    sources, start, end = lake
    build = spark_engine.build(sources, start, end, str(destination))
    assert build.uri == str(destination)
    assert pq.ParquetFile(destination).metadata.num_rows == build.rows > OLD_ROWS
    assert list(destination.parent.iterdir()) == [destination]


def test_a_reader_never_sees_a_partial_file(spark_engine, lake, destination) -> None:
    """A reader polling the destination during the build reads the old file or the new one.

    The reader opens the file once per read, as every reader in the project does
    (``pq.ParquetFile``): ``pq.read_table(path)`` opens a path more than once, and
    can pair one version's footer with the other's pages across any rename, atomic or not.
    """
    sources, start, end = lake
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            try:
                seen.append(pq.ParquetFile(destination).read().num_rows)
            except Exception as error:  # any failed read is a finding
                errors.append(error)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        build = spark_engine.build(sources, start, end, str(destination))
    finally:
        done.set()
        reader.join()
    assert not errors, errors[:3]
    assert set(seen) <= {OLD_ROWS, build.rows}
    assert OLD_ROWS in seen


def test_a_failed_build_keeps_the_old_file(spark_engine, lake, destination, tmp_path) -> None:
    sources, start, end = lake
    with pytest.raises(Exception, match="(?i)path|exist"):
        spark_engine.build([str(tmp_path / "missing.parquet")], start, end, str(destination))
    assert pq.ParquetFile(destination).metadata.num_rows == OLD_ROWS
    assert list(destination.parent.iterdir()) == [destination]


def test_a_failure_after_spark_wrote_keeps_the_old_file(
    spark_engine, lake, destination, monkeypatch
) -> None:
    def fail(staging: Path, target: Path) -> int:
        assert list(staging.glob("part-*.parquet")), "Spark wrote nothing"
        raise OSError("disk gone")

    monkeypatch.setattr(spark_engine_module, "_publish", fail)
    sources, start, end = lake
    with pytest.raises(OSError, match="disk gone"):
        spark_engine.build(sources, start, end, str(destination))
    assert pq.ParquetFile(destination).metadata.num_rows == OLD_ROWS
    assert list(destination.parent.iterdir()) == [destination]


def test_an_empty_window_writes_an_empty_file_with_the_columns(
    spark_engine, lake, tmp_path
) -> None:
    sources, start, _ = lake
    duckdb = DuckDBFeatureEngine(threads=1).build(
        sources, start - 10, start, str(tmp_path / "d.parquet")
    )
    spark = spark_engine.build(sources, start - 10, start, str(tmp_path / "s.parquet"))
    assert spark.rows == duckdb.rows == 0
    assert pq.read_schema(spark.uri).names == pq.read_schema(duckdb.uri).names


def test_no_sources_is_an_error(spark_engine, tmp_path) -> None:
    with pytest.raises(ValueError, match="no raw partitions"):
        spark_engine.build([], 0, 86_400, str(tmp_path / "f.parquet"))


def test_object_store_destinations_are_refused(spark_engine, lake) -> None:
    sources, start, end = lake
    with pytest.raises(NotImplementedError, match="s3://"):
        spark_engine.build(sources, start, end, "s3://bucket/features/data.parquet")


def test_builds_run_in_utc_whatever_the_session_had(spark_engine) -> None:
    """The engine sets the session time zone to UTC before every build (a shared session may
    have been changed), and timestamps come back unchanged."""
    session = spark_engine.spark_session()
    session.conf.set("spark.sql.session.timeZone", "America/New_York")
    frame, _ = simulated_transactions(seed=3)
    frame = frame.head(200)
    result = spark_engine.compute(frame).set_index("transaction_id")
    assert session.conf.get("spark.sql.session.timeZone") == "UTC"
    pd.testing.assert_series_equal(
        result.loc[frame["transaction_id"], "tx_datetime"],
        frame.set_index("transaction_id")["tx_datetime"],
    )


def test_the_session_is_reused(spark_engine) -> None:
    from fraud_orchestration.resources.spark_engine import SparkFeatureEngine

    first = spark_engine.spark_session()
    other = SparkFeatureEngine(master="local[1]", shuffle_partitions=2)
    assert other.spark_session() is first
    assert first.conf.get("spark.sql.shuffle.partitions") == "2"
    assert spark_engine.spark_session().conf.get("spark.sql.shuffle.partitions") == "3"


def test_it_is_a_pyspark_resource_underneath(spark_engine) -> None:
    from dagster_pyspark import PySparkResource

    resource = spark_engine.pyspark_resource()
    assert isinstance(resource, PySparkResource)
    assert resource.spark_config["spark.master"] == "local[1]"
    assert resource.spark_config["spark.sql.session.timeZone"] == "UTC"
