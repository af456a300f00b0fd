"""The lake: the landing zone (Firehose layout) and the partitioned Parquet tables."""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableResource

from fraud_orchestration.atomic import atomic_path, atomic_write_bytes
from fraud_orchestration.schema import LANDING_PREFIX


class Lake(ConfigurableResource, ABC):
    """Where events land and where each partitioned table keeps one Parquet file a day."""

    @abstractmethod
    def landing_keys(self, day: date) -> list[str]:
        """Keys of every file landed under the day's folder, sorted (deterministic order)."""

    @abstractmethod
    def read_landing(self, key: str) -> bytes: ...

    @abstractmethod
    def table_uri(self, table: str, day: date) -> str:
        """Where the day's partition of ``table`` lives (a path or an ``s3://`` URI)."""

    @abstractmethod
    def partition_exists(self, table: str, day: date) -> bool: ...

    @abstractmethod
    def write_partition(self, table: str, day: date, data: pa.Table) -> str:
        """Replace the day's partition atomically; return its URI."""

    def read_partitions(
        self, table: str, days: list[date], columns: list[str] | None = None
    ) -> pd.DataFrame:
        """The named partitions that exist, concatenated in day order (only ``columns``, when
        given: Parquet then reads nothing else)."""
        data = self.read_table(table, days, columns)
        return data.to_pandas() if data is not None else pd.DataFrame()

    def read_table(
        self, table: str, days: list[date], columns: list[str] | None = None
    ) -> pa.Table | None:
        """:meth:`read_partitions` as one Arrow table (None when no partition exists), for
        readers that need no DataFrame (the batch scoring path)."""
        tables = [
            pq.ParquetFile(self._open(self.table_uri(table, day))).read(columns=columns)
            for day in days
            if self.partition_exists(table, day)
        ]
        if not tables:
            return None
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    def existing_uris(self, table: str, days: list[date]) -> list[str]:
        return [self.table_uri(table, day) for day in days if self.partition_exists(table, day)]

    @abstractmethod
    def write_object(self, key: str, data: bytes) -> str:
        """Write one object (training sets, manifests, reports) atomically; return its URI."""

    @abstractmethod
    def read_object(self, key: str) -> bytes: ...

    @abstractmethod
    def object_exists(self, key: str) -> bool: ...

    @abstractmethod
    def _open(self, uri: str) -> io.BufferedIOBase | str: ...


class LocalLake(Lake):
    """landing files under `landing/`, tables as `lake/<table>/date=.../data.parquet`."""

    root: str

    @property
    def root_path(self) -> Path:
        return Path(self.root)

    def landing_keys(self, day: date) -> list[str]:
        folder = self.root_path / LANDING_PREFIX / f"{day:%Y/%m/%d}"
        if not folder.is_dir():
            return []
        return sorted(
            str(path.relative_to(self.root_path))
            for path in folder.rglob("*.jsonl.gz")
            if not path.name.startswith(".")
        )

    def read_landing(self, key: str) -> bytes:
        return (self.root_path / key).read_bytes()

    def table_uri(self, table: str, day: date) -> str:
        return str(self.root_path / "lake" / table / f"date={day.isoformat()}" / "data.parquet")

    def partition_exists(self, table: str, day: date) -> bool:
        return Path(self.table_uri(table, day)).is_file()

    def write_partition(self, table: str, day: date, data: pa.Table) -> str:
        uri = self.table_uri(table, day)
        with atomic_path(uri) as tmp:
            pq.write_table(data, tmp, compression="zstd")
        return uri

    def write_object(self, key: str, data: bytes) -> str:
        path = self.root_path / key
        atomic_write_bytes(path, data)
        return str(path)

    def read_object(self, key: str) -> bytes:
        return (self.root_path / key).read_bytes()

    def object_exists(self, key: str) -> bool:
        return (self.root_path / key).is_file()

    def _open(self, uri: str) -> str:
        return uri
