"""THE feature definitions: one SQL text (``transaction_features.sql``) and the model features.

Every engine (DuckDB, Spark) and the scoring service run the same text, so training and
serving cannot drift apart. ``FEATURES`` names every column the SQL adds for the model with
its kind; parity tests enumerate it, so a feature added here is covered everywhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

SQL_PATH = Path(__file__).with_name("transaction_features.sql")
SOURCE_VIEW = "transactions"
"""The view name the SQL reads; engines register their input under it."""


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # "raw", "flag", "count", "average" or "ratio": counts and flags compare exactly


FEATURES: tuple[Feature, ...] = (
    Feature("tx_amount", "raw"),
    Feature("tx_during_weekend", "flag"),
    Feature("tx_during_night", "flag"),
    *(
        feature
        for window in (1, 7, 30)
        for feature in (
            Feature(f"customer_id_nb_tx_{window}day_window", "count"),
            Feature(f"customer_id_avg_amount_{window}day_window", "average"),
        )
    ),
    *(
        feature
        for window in (1, 7, 30)
        for feature in (
            Feature(f"terminal_id_nb_tx_{window}day_window", "count"),
            Feature(f"terminal_id_risk_{window}day_window", "ratio"),
        )
    ),
)
FEATURE_NAMES: list[str] = [feature.name for feature in FEATURES]
HANDBOOK_FEATURES: list[str] = FEATURE_NAMES[:15]
"""The handbook's 15 baseline features, in its order (lower-case names)."""

KEY_COLUMNS = ["transaction_id", "tx_datetime", "tx_time_seconds", "customer_id", "terminal_id"]
LABEL_COLUMN = "tx_fraud"


def feature_sql() -> str:
    return SQL_PATH.read_text()


def feature_definition_version() -> str:
    """A short content hash of the SQL text: it changes whenever a definition changes."""
    return hashlib.sha256(feature_sql().encode()).hexdigest()[:12]
