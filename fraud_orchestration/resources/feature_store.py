"""The feature store: an offline history for training and an online state for serving.

Offline: the feature group's records (record id ``transaction_id``, ``event_time``,
``write_time``) one Parquet file a day; re-writing a day replaces it atomically, so a re-run
never duplicates a record. Reads de-duplicate on (record id, event time) keeping the newest
write, as a SageMaker Feature Store offline store must be read.

Online: what serving needs to compute a new transaction's features with the same SQL: each
card's transactions of the last 30 days and each terminal's of the last 37 days (the label
delay plus the longest window), as of the newest ingested day. One SQLite file, rebuilt under
a temporary name and renamed into place.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableResource

from fraud_orchestration.atomic import atomic_path

RECORD_ID = "transaction_id"
EVENT_TIME = "event_time"
WRITE_TIME = "write_time"
CARD_HISTORY_DAYS = 30
TERMINAL_HISTORY_DAYS = 37


class FeatureStore(ConfigurableResource, ABC):
    feature_group: str = "transaction-features"

    @abstractmethod
    def write_offline(self, day: date, features: pd.DataFrame) -> str:
        """Replace the day's records; return where they live."""

    @abstractmethod
    def read_offline(self, days: list[date]) -> pd.DataFrame:
        """Point-in-time read of the named days: one row per record (newest write)."""

    @abstractmethod
    def offline_days(self) -> list[date]: ...

    @abstractmethod
    def publish_online(
        self, cards: pd.DataFrame, terminals: pd.DataFrame, as_of_seconds: int
    ) -> dict: ...

    @abstractmethod
    def online_history(
        self, customer_id: int, terminal_id: int
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The card's and the terminal's recent transactions, as serving needs them."""


def with_store_times(features: pd.DataFrame, write_time: datetime | None = None) -> pd.DataFrame:
    stamp = write_time or datetime.now(UTC).replace(tzinfo=None)
    return features.assign(
        **{EVENT_TIME: features["tx_datetime"], WRITE_TIME: pd.Timestamp(stamp).as_unit("us")}
    )


def latest_writes(records: pd.DataFrame) -> pd.DataFrame:
    """De-duplicate on (record id, event time), keeping the newest write."""
    if records.empty:
        return records
    return (
        records.sort_values([RECORD_ID, EVENT_TIME, WRITE_TIME], kind="stable")
        .drop_duplicates([RECORD_ID, EVENT_TIME], keep="last")
        .sort_values(["tx_time_seconds", RECORD_ID], kind="stable")
        .reset_index(drop=True)
    )


class LocalFeatureStore(FeatureStore):
    root: str

    @property
    def _offline_root(self) -> Path:
        return Path(self.root) / "offline" / self.feature_group

    @property
    def online_path(self) -> Path:
        return Path(self.root) / "online" / f"{self.feature_group}.sqlite"

    def _offline_path(self, day: date) -> Path:
        return self._offline_root / f"date={day.isoformat()}" / "data.parquet"

    def write_offline(self, day: date, features: pd.DataFrame) -> str:
        path = self._offline_path(day)
        table = pa.Table.from_pandas(with_store_times(features), preserve_index=False)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        return str(path)

    def read_offline(self, days: list[date]) -> pd.DataFrame:
        paths = [self._offline_path(day) for day in days if self._offline_path(day).is_file()]
        if not paths:
            return pd.DataFrame()
        return latest_writes(pd.concat([pq.ParquetFile(p).read().to_pandas() for p in paths]))

    def offline_days(self) -> list[date]:
        if not self._offline_root.is_dir():
            return []
        return sorted(
            date.fromisoformat(folder.name.removeprefix("date="))
            for folder in self._offline_root.glob("date=*")
            if (folder / "data.parquet").is_file()
        )

    def publish_online(
        self, cards: pd.DataFrame, terminals: pd.DataFrame, as_of_seconds: int
    ) -> dict:
        # Rows are written in (entity, time) order, so one card's or terminal's history lies
        # on a few adjacent pages: the service reads it with one short index range scan.
        cards = cards.sort_values(["customer_id", "tx_time_seconds", "transaction_id"])
        terminals = terminals.sort_values(["terminal_id", "tx_time_seconds", "transaction_id"])
        with atomic_path(self.online_path) as tmp:
            with sqlite3.connect(tmp) as connection:
                cards.to_sql("card_history", connection, index=False)
                terminals.to_sql("terminal_history", connection, index=False)
                connection.execute("CREATE INDEX card_idx ON card_history (customer_id)")
                connection.execute("CREATE INDEX terminal_idx ON terminal_history (terminal_id)")
                connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
                connection.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [
                        ("as_of_seconds", str(as_of_seconds)),
                        ("built_at", datetime.now(UTC).isoformat()),
                    ],
                )
            connection.close()
        return {
            "cards": cards["customer_id"].nunique(),
            "terminals": terminals["terminal_id"].nunique(),
        }

    def online_history(
        self, customer_id: int, terminal_id: int
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        with sqlite3.connect(f"file:{self.online_path}?mode=ro", uri=True) as connection:
            card = pd.read_sql(
                "SELECT * FROM card_history WHERE customer_id = ?",
                connection,
                params=(customer_id,),
            )
            terminal = pd.read_sql(
                "SELECT * FROM terminal_history WHERE terminal_id = ?",
                connection,
                params=(terminal_id,),
            )
        return card, terminal
