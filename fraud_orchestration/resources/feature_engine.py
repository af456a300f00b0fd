"""Feature engines: run THE feature SQL over raw partitions and write one output partition."""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass

import duckdb
import pandas as pd
from dagster import ConfigurableResource
from pydantic import Field

from fraud_orchestration.atomic import atomic_path
from fraud_orchestration.features import SOURCE_VIEW, feature_sql
from fraud_orchestration.progress import duckdb_query_progress


@dataclass(frozen=True)
class FeatureBuild:
    rows: int
    uri: str


def window_query(start_seconds: int, end_seconds: int) -> str:
    """The feature SQL over the whole look-back, keeping only the output window's rows."""
    return (
        f"SELECT * FROM ({feature_sql()}) AS features\n"
        f"WHERE tx_time_seconds >= {int(start_seconds)} AND tx_time_seconds < {int(end_seconds)}\n"
        "ORDER BY tx_time_seconds, transaction_id"
    )


class FeatureEngine(ConfigurableResource, ABC):
    """Computes features for ``[start_seconds, end_seconds)`` from raw Parquet partitions that
    cover the window and its look-back, and writes them to ``destination`` atomically."""

    @abstractmethod
    def build(
        self, sources: list[str], start_seconds: int, end_seconds: int, destination: str
    ) -> FeatureBuild: ...

    @abstractmethod
    def compute(self, transactions: pd.DataFrame) -> pd.DataFrame:
        """Features for every row of an in-memory frame (tests, serving, small data)."""


class DuckDBFeatureEngine(FeatureEngine):
    """The embedded default: one in-process DuckDB query per build."""

    threads: int = Field(default=0, description="0 means one thread per core.")
    memory_limit: str = Field(default="3GB", description="DuckDB spills to disk beyond this.")

    def _connect(self) -> duckdb.DuckDBPyConnection:
        connection = duckdb.connect(
            config={
                "preserve_insertion_order": False,
                "temp_directory": tempfile.gettempdir() + "/fraud-duckdb-spill",
            }
        )
        connection.execute("SET enable_progress_bar = false")
        connection.execute(f"SET threads = {self.threads or os.cpu_count() or 1}")
        connection.execute(f"SET memory_limit = '{self.memory_limit}'")
        return connection

    def build(
        self, sources: list[str], start_seconds: int, end_seconds: int, destination: str
    ) -> FeatureBuild:
        with self._connect() as connection, atomic_path(destination) as tmp:
            files = ", ".join(f"'{source}'" for source in sources)
            connection.execute(
                f"CREATE VIEW {SOURCE_VIEW} AS SELECT * FROM read_parquet([{files}])"
            )
            query = window_query(start_seconds, end_seconds)
            with duckdb_query_progress(connection, "feature build"):
                connection.execute(f"COPY ({query}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")
            count = connection.execute(f"SELECT count(*) FROM read_parquet('{tmp}')")
            (rows,) = count.fetchall()[0]
        return FeatureBuild(rows=int(rows), uri=destination)

    def compute(self, transactions: pd.DataFrame) -> pd.DataFrame:
        with self._connect() as connection:
            connection.register(SOURCE_VIEW, transactions)
            return connection.execute(
                f"SELECT * FROM ({feature_sql()}) ORDER BY tx_time_seconds, transaction_id"
            ).df()
