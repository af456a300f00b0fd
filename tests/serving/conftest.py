"""A small simulated lake, its offline features, a tiny model and an online store as of day D.

Session-scoped: the data and the model are read-only for the tests; every test that needs a
server starts its own (fresh recent-events buffer) on a free loopback port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from fraud_orchestration.assets.feature_store import online_histories
from fraud_orchestration.features import FEATURE_NAMES
from fraud_orchestration.modeling.trainer import TrainingParams, train_model
from fraud_orchestration.partitions import day_bounds_seconds
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine
from fraud_orchestration.resources.feature_store import LocalFeatureStore
from fraud_orchestration.schema import as_raw_transactions
from fraud_orchestration.serving.app import ServingConfig
from fraud_orchestration.serving.server import BackgroundServer
from fraud_orchestration.simulator import SimulationConfig, generate

START = date(2018, 4, 1)
N_DAYS = 40
STORE_DAY = START + timedelta(days=N_DAYS - 2)
"""Day D: the online store holds everything up to the end of this day."""
SCORED_DAY = STORE_DAY + timedelta(days=1)
"""Day D+1: the transactions the service scores."""
REQUEST_FIELDS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]


@dataclass(frozen=True)
class Lake:
    raw: pd.DataFrame
    features: pd.DataFrame
    """Offline features of every transaction (``DuckDBFeatureEngine.compute`` over all)."""
    store_path: Path
    as_of_seconds: int
    model_dir: Path

    def day(self, day: date) -> pd.DataFrame:
        start, end = day_bounds_seconds(day)
        rows = self.features[
            (self.features["tx_time_seconds"] >= start) & (self.features["tx_time_seconds"] < end)
        ]
        return rows.sort_values(["tx_time_seconds", "transaction_id"], kind="stable")


def as_request(row: pd.Series | dict) -> dict:
    """A transaction as a client sends it (no label)."""
    return {
        "transaction_id": int(row["transaction_id"]),
        "tx_datetime": pd.Timestamp(row["tx_datetime"]).isoformat(),
        "customer_id": int(row["customer_id"]),
        "terminal_id": int(row["terminal_id"]),
        "tx_amount": float(row["tx_amount"]),
    }


def publish_store(features: pd.DataFrame, as_of_seconds: int, root: Path) -> Path:
    """The online store as the ``online_feature_store`` asset builds it as of ``as_of``."""
    records = features[features["tx_time_seconds"] < as_of_seconds]
    cards, terminals = online_histories(records, as_of_seconds)
    store = LocalFeatureStore(root=str(root))
    store.publish_online(cards, terminals, as_of_seconds)
    return store.online_path


def train_tiny_model(features: pd.DataFrame, directory: Path, feature_names: list[str]) -> Path:
    days = (features["tx_time_seconds"] - features["tx_time_seconds"].min()) // 86_400
    train = features[(days >= 8) & (days < 30)]
    valid = features[(days >= 30) & (days < 38)]
    params = TrainingParams(
        n_estimators=25, max_depth=4, max_bin=256, early_stopping_rounds=None, n_jobs=2
    )
    model = train_model(train, valid, feature_names, params)
    return model.save(directory)


@pytest.fixture(scope="session")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    root = tmp_path_factory.mktemp("serving_lake")
    config = SimulationConfig(n_customers=1000, n_terminals=2000, start_date=START, n_days=N_DAYS)
    raw = as_raw_transactions(generate(config))
    features = DuckDBFeatureEngine(threads=2).compute(raw)
    as_of = day_bounds_seconds(STORE_DAY)[1]
    store_path = publish_store(features, as_of, root / "feature_store")
    model_dir = train_tiny_model(features, root / "model-v1", FEATURE_NAMES)
    return Lake(raw, features, store_path, as_of, model_dir)


@pytest.fixture
def start_server(lake: Lake) -> Iterator[Callable[..., BackgroundServer]]:
    """``start_server(**config)``: a running server on a free loopback port; the online store
    and the tiny model are the defaults (``model_dir=None`` starts without a model), with a
    generous time budget unless a test sets one."""
    servers: list[BackgroundServer] = []

    def start(**settings) -> BackgroundServer:
        settings.setdefault("online_store_path", str(lake.store_path))
        settings.setdefault("model_dir", str(lake.model_dir))
        settings.setdefault("model_version", "v1")
        settings.setdefault("budget_ms", 2000.0)  # a loaded CI machine must not flip answers
        server = BackgroundServer(ServingConfig(**settings)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
