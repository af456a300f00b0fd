"""A small simulated lake in the project's raw schema, and its features (seconds to build)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine
from fraud_orchestration.schema import as_raw_transactions
from fraud_orchestration.simulator import SimulationConfig, generate

SIMULATION = SimulationConfig(n_customers=600, n_terminals=800, n_days=42, seed=7)
"""About 1,200 transactions a day: 14 days of look-back before a 7 / 7 / 7 handbook split."""
TRAIN_START = SIMULATION.start_date + timedelta(days=21)


def simulated_raw(config: SimulationConfig = SIMULATION) -> pd.DataFrame:
    """The simulation as raw transactions (``tx_time_seconds`` = epoch seconds, UTC)."""
    return as_raw_transactions(generate(config))


def compute_features(raw: pd.DataFrame) -> pd.DataFrame:
    """THE feature SQL on DuckDB, one thread so that sums add up in one order."""
    return DuckDBFeatureEngine(threads=1).compute(raw)


def day_of(frame: pd.DataFrame) -> pd.Series:
    return frame["tx_datetime"].dt.date


@pytest.fixture(scope="package")
def raw() -> pd.DataFrame:
    return simulated_raw()


@pytest.fixture(scope="package")
def features(raw: pd.DataFrame) -> pd.DataFrame:
    return compute_features(raw)
