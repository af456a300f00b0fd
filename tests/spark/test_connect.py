"""The engine through Spark Connect: a real Spark Connect server, started here from the
``pyspark`` package (``bin/spark-submit --class ...SparkConnectServer``, local[1]) in its own
JVM, and ``SparkFeatureEngine(connect_url="sc://127.0.0.1:<port>")`` as a client of it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from fraud_orchestration.partitions import lookback_days
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine
from tests.spark.conftest import (
    assert_same_features,
    assert_same_parquet_types,
    java_or_skip,
    read_features,
    simulated_transactions,
    window_of_days,
    write_lake,
)

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
START_TIMEOUT_SECONDS = 240


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory) -> Iterator[str]:
    java_or_skip()
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    submit = spark_home / "bin" / "spark-submit"
    if not os.access(submit, os.X_OK):
        pytest.skip(f"{submit} is missing: this pyspark cannot start a Connect server")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("connect-server")
    log_path = workdir / "server.log"
    command = [
        str(submit),
        "--class", SERVER_CLASS,
        "--master", "local[1]",
        "--driver-memory", "1g",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.sql.shuffle.partitions=3",
        "--conf", f"spark.sql.warehouse.dir={workdir / 'warehouse'}",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            command,
            cwd=workdir,
            env={**os.environ, "SPARK_HOME": str(spark_home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _listening(port):
            if server.poll() is not None:
                pytest.fail(f"the Connect server exited with {server.returncode}: {log_path}")
            if time.monotonic() > deadline:
                pytest.fail(f"the Connect server did not listen within {START_TIMEOUT_SECONDS} s")
            time.sleep(1)
        url = f"sc://127.0.0.1:{port}"
        yield url
        from fraud_orchestration.resources.spark_engine import stop_spark_sessions

        stop_spark_sessions(connect_url=url)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server's own process group, started above
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def connect_engine(connect_url: str):
    from fraud_orchestration.resources.spark_engine import SparkFeatureEngine

    return SparkFeatureEngine(connect_url=connect_url, shuffle_partitions=3)


def test_connect_session_is_a_remote_client(connect_engine) -> None:
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    session = connect_engine.spark_session()
    assert isinstance(session, ConnectSession)
    assert session.conf.get("spark.sql.session.timeZone") == "UTC"
    assert "SPARK_CONNECT_MODE_ENABLED" not in os.environ


def test_connect_compute_matches_duckdb(connect_engine) -> None:
    transactions, _ = simulated_transactions()
    expected = DuckDBFeatureEngine(threads=1).compute(transactions)
    assert_same_features(expected, connect_engine.compute(transactions))


def test_connect_build_matches_duckdb(connect_engine, tmp_path) -> None:
    transactions, edge_day = simulated_transactions()
    uris = write_lake(tmp_path / "lake", transactions)
    day = edge_day + timedelta(days=37)
    sources = [uris[d] for d in lookback_days(day) if d in uris]
    start, end = window_of_days(day, day)
    duckdb = DuckDBFeatureEngine(threads=1).build(
        sources, start, end, str(tmp_path / "duckdb.parquet")
    )
    spark = connect_engine.build(sources, start, end, str(tmp_path / "connect.parquet"))
    assert spark.rows == duckdb.rows > 0
    assert_same_parquet_types(duckdb.uri, spark.uri)
    assert_same_features(read_features(duckdb.uri), read_features(spark.uri))
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "connect.parquet",
        "duckdb.parquet",
        "lake",
    ]


def test_the_classic_session_still_works_beside_connect(connect_engine, spark_engine) -> None:
    connect_engine.spark_session()
    classic = spark_engine.spark_session()
    assert type(classic).__module__ == "pyspark.sql.session"
    assert classic.sql("SELECT 1 AS one").collect()[0]["one"] == 1
