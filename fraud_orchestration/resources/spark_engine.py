"""The Spark feature engine: THE feature SQL on Spark, behind the ``FeatureEngine`` interface.

It runs the very text of ``fraud_orchestration/features/transaction_features.sql`` (through
``window_query``, like the DuckDB engine) over the lake's raw Parquet partitions, registered
as the temporary view ``SOURCE_VIEW``; there is no second copy of any feature logic here.

Two ways to reach Spark:

* classic (default): a driver JVM started in this process through
  ``dagster_pyspark.PySparkResource`` with ``master`` (``local[*]`` by default, or e.g.
  ``yarn`` / ``spark://host:7077`` when this process runs on a cluster's edge node);
* Spark Connect: ``connect_url`` (``sc://host:15002``) makes a thin gRPC client session; the
  server does the work. Only the client library runs here, no JVM.

Either session is created on first use and then reused by every build of the process (one
JVM per process). The output is one Parquet file with the same column names, order and
types as the DuckDB engine's: Spark writes into a hidden directory beside ``destination``
(one task, so one part file), and that file is then moved onto ``destination`` with
``atomic_path``, so a reader sees the previous file or the new one, never a partial one.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from pydantic import Field

from fraud_orchestration.atomic import atomic_path
from fraud_orchestration.features import FEATURES, SOURCE_VIEW, feature_sql
from fraud_orchestration.resources.feature_engine import FeatureBuild, FeatureEngine, window_query

log = logging.getLogger(__name__)

SPARK_TYPES = {"flag": "int", "count": "bigint", "average": "double", "ratio": "double"}
"""The Spark SQL type of each feature kind: what DuckDB produces for the same SQL."""
PANDAS_TYPES = {"flag": "int32", "count": "int64", "average": "float64", "ratio": "float64"}

RUNTIME_CONFIG = {
    # Timestamps must round-trip unchanged: the SQL itself only uses epoch seconds.
    "spark.sql.session.timeZone": "UTC",
    # Raw partitions hold time-zone-naive timestamps: read them as TIMESTAMP_NTZ, which Spark
    # writes back as Parquet TIMESTAMP(isAdjustedToUTC=false, MICROS), as DuckDB does.
    "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "zstd",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
"""SQL settings applied to the session before every build (a shared session may have others)."""

_LOCK = threading.RLock()
_CLASSIC: Any = None  # the initialised PySparkResource of this process
_CONNECT: dict[str, Any] = {}  # Spark Connect sessions by URL


class SparkFeatureEngine(FeatureEngine):
    """Spark behind ``FeatureEngine``: ``local[*]`` in this process by default, a cluster's
    master, or a Spark Connect server (``connect_url``)."""

    master: str = Field(
        default="local[*]",
        description="Spark master of the classic session: local[*], local[2], yarn, spark://...",
    )
    connect_url: str = Field(
        default="",
        description="Spark Connect URL (sc://host:15002); when set, master is not used and no "
        "JVM starts here.",
    )
    shuffle_partitions: int = Field(
        default=8,
        description="spark.sql.shuffle.partitions: the two window shuffles (card, terminal) and "
        "the final sort. Adaptive execution coalesces small ones.",
    )
    driver_memory: str = Field(
        default="3g",
        description="spark.driver.memory of the classic session (the whole of local mode); "
        "only takes effect when this process starts its JVM.",
    )
    app_name: str = Field(default="fraud-orchestration-features")
    spark_config: dict[str, str] = Field(
        default_factory=dict,
        description="Extra Spark settings, e.g. spark.ui.enabled=false or executor sizes.",
    )

    # -- sessions ---------------------------------------------------------------------------

    def session_config(self) -> dict[str, str]:
        """The classic session's settings, as handed to ``PySparkResource``."""
        return {
            "spark.master": self.master,
            "spark.app.name": self.app_name,
            "spark.driver.memory": self.driver_memory,
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            "spark.ui.showConsoleProgress": "false",
            **RUNTIME_CONFIG,
            **self.spark_config,
        }

    def pyspark_resource(self) -> Any:
        """The ``dagster_pyspark.PySparkResource`` that makes this engine's classic session."""
        from dagster_pyspark import PySparkResource

        return PySparkResource(spark_config=self.session_config())

    def spark_session(self) -> Any:
        """This process's session for this engine: created on first use, then reused."""
        global _CLASSIC
        with _LOCK:
            if self.connect_url:
                session = _CONNECT.get(self.connect_url)
                if session is None or session.is_stopped:
                    session = _connect_session(self.connect_url)
                    _CONNECT[self.connect_url] = session
            else:
                if _CLASSIC is None or _CLASSIC.spark_session.sparkContext._jsc is None:
                    _CLASSIC = self.pyspark_resource().process_config_and_initialize()
                session = _CLASSIC.spark_session
                running = session.sparkContext.master
                if running != self.master:
                    log.warning(
                        "The process's Spark session runs on %s, not %s: one JVM per process, "
                        "the first engine's master and driver memory win.",
                        running,
                        self.master,
                    )
            runtime = {
                **RUNTIME_CONFIG,
                "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
                **{k: v for k, v in self.spark_config.items() if k.startswith("spark.sql.")},
            }
            for key, value in runtime.items():
                session.conf.set(key, value)
            return session

    # -- FeatureEngine ----------------------------------------------------------------------

    def build(
        self, sources: list[str], start_seconds: int, end_seconds: int, destination: str
    ) -> FeatureBuild:
        if not sources:
            raise ValueError("no raw partitions to build features from")
        target = _local_path(destination)
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.spark")
        try:
            with _LOCK:
                session = self.spark_session()
                try:
                    session.read.parquet(*sources).createOrReplaceTempView(SOURCE_VIEW)
                    features = _conform(session.sql(window_query(start_seconds, end_seconds)))
                    # One task writes the ordered rows: one part file, in ORDER BY order.
                    writer = features.coalesce(1).write.mode("overwrite")
                    writer.option("compression", "zstd").parquet(str(staging))
                finally:
                    session.catalog.dropTempView(SOURCE_VIEW)
            rows = _publish(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return FeatureBuild(rows=int(rows), uri=destination)

    def compute(self, transactions: pd.DataFrame) -> pd.DataFrame:
        ordered = (
            f"SELECT * FROM ({feature_sql()}) AS features ORDER BY tx_time_seconds, transaction_id"
        )
        with _LOCK:
            session = self.spark_session()
            try:
                session.createDataFrame(transactions).createOrReplaceTempView(SOURCE_VIEW)
                result = _conform(session.sql(ordered)).toPandas()
            finally:
                session.catalog.dropTempView(SOURCE_VIEW)
        # The DuckDB engine keeps each input column's type and gives features the kind's type.
        kinds = {feature.name: feature.kind for feature in FEATURES}
        dtypes = {
            column: transactions[column].dtype
            if column in transactions.columns
            else PANDAS_TYPES.get(kinds.get(column, ""), result[column].dtype)
            for column in result.columns
        }
        return result.astype(dtypes)


def stop_spark_sessions(connect_url: str | None = None) -> None:
    """Stop this process's sessions (tests, benchmarks), or only the Connect session of
    ``connect_url``; the next build starts a new one."""
    global _CLASSIC
    with _LOCK:
        for url in [connect_url] if connect_url else list(_CONNECT):
            session = _CONNECT.pop(url, None)
            if session is not None:
                session.stop()
        if _CLASSIC is not None and not connect_url:
            _CLASSIC.spark_session.stop()
            _CLASSIC = None


def _connect_session(url: str) -> Any:
    """A Spark Connect client session of its own, built with the Connect builder directly.

    ``SparkSession.builder.remote(url)`` of classic PySpark (what ``PySparkResource`` would
    call with ``spark.remote``) refuses to run beside a classic session in the process and
    switches the whole process into Connect mode; this does neither.
    """
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    return ConnectSession.builder.remote(url).create()


def _conform(features: Any) -> Any:
    """Cast every feature to its kind's type (what DuckDB gives); other columns pass through.

    SQL expressions rather than ``pyspark.sql.functions``, which pick classic or Connect
    columns by a process-wide switch, so the same code serves both kinds of session."""
    kinds = {feature.name: feature.kind for feature in FEATURES}
    return features.selectExpr(
        *(
            f"CAST(`{name}` AS {SPARK_TYPES[kinds[name]]}) AS `{name}`"
            if kinds.get(name) in SPARK_TYPES
            else f"`{name}`"
            for name in features.columns
        )
    )


def _publish(staging: Path, target: Path) -> int:
    """Move the one part file Spark wrote into ``staging`` onto ``target`` atomically."""
    parts = sorted(staging.glob("part-*.parquet"))
    if len(parts) != 1:
        raise RuntimeError(f"Spark wrote {len(parts)} part files into {staging}, not 1")
    rows = pq.ParquetFile(parts[0]).metadata.num_rows
    with atomic_path(target) as tmp:
        os.replace(parts[0], tmp)
    return rows


def _local_path(destination: str) -> Path:
    if "://" in destination and not destination.startswith("file://"):
        raise NotImplementedError(
            f"SparkFeatureEngine publishes to a local or mounted path, not {destination!r}: "
            "an object store needs a copy-into-place step instead of a rename."
        )
    return Path(destination.removeprefix("file://"))
