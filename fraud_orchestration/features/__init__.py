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
    kind: str
    """"raw", "flag", "count", "seconds", "average" or "ratio". Every kind is equal bit for bit
    across engines: sums add whole numbers (means average whole cents), which float64 adds
    exactly in any order, and every later step is an IEEE operation all engines share."""


SECONDS_SENTINEL_30_DAYS = 30 * 86_400
"""``customer_id_seconds_since_previous_tx`` when the card has no earlier transaction in the
last 30 days (its window's length; a real gap is at most 30 days minus 1 second)."""
SECONDS_SENTINEL_37_DAYS = 37 * 86_400
"""``terminal_id_seconds_since_*`` when the terminal has no such labelled transaction in
(t - 37 days, t - 7 days] (a real value is at most 37 days minus 1 second)."""
RATIO_SENTINEL = -1.0
"""Amount ratios whose reference window is empty or sums to 0 (real ratios are >= 0)."""


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
    # Beyond the handbook. Card features read no label and reach back at most 30 days,
    # terminal features at most 37 days with labels only behind the 7-day delay: what the
    # online store keeps for serving. The card's amount against its own habits:
    # amount / its mean over (t - w days, t], the current transaction included (1.0 if 0 / 0);
    *(Feature(f"customer_id_amount_ratio_{window}day_window", "ratio") for window in (1, 7, 30)),
    # amount / its mean over its earlier transactions: (t - 30 d, t) before the current
    # second, (t - 30 d, t - 7 d] and (t - 30 d, t - 14 d] (older than an ongoing 14-day card
    # compromise could be); -1 when the window is empty (or sums to 0);
    Feature("customer_id_amount_ratio_previous_30day_window", "ratio"),
    Feature("customer_id_amount_ratio_7to30day_window", "ratio"),
    Feature("customer_id_amount_ratio_14to30day_window", "ratio"),
    # amount / its largest amount over (t - 30 days, t), before the current second (-1: none);
    Feature("customer_id_amount_to_max_30day_window", "ratio"),
    # t - its previous transaction in (t - 30 days, t) (30 days: none).
    Feature("customer_id_seconds_since_previous_tx", "seconds"),
    # The card at this terminal (no labels): transactions of the pair over (t - 30 days, t]
    # (>= 1), and whether the pair met before the current second within 30 days.
    Feature("customer_terminal_nb_tx_30day_window", "count"),
    Feature("customer_terminal_seen_30day_window", "flag"),
    # The terminal's labelled history behind the delay: frauds over (t - 14 d, t - 7 d] and
    # (t - 37 d, t - 7 d]; t - its last fraud, first fraud, last genuine transaction in
    # (t - 37 d, t - 7 d] (37 days: none); whether its latest label there is a fraud.
    Feature("terminal_id_nb_fraud_7day_window", "count"),
    Feature("terminal_id_nb_fraud_30day_window", "count"),
    Feature("terminal_id_seconds_since_last_fraud", "seconds"),
    Feature("terminal_id_seconds_since_first_fraud", "seconds"),
    Feature("terminal_id_seconds_since_last_genuine", "seconds"),
    Feature("terminal_id_last_label_fraud", "flag"),
    # The terminal's activity up to now (no labels, no delay), over (t - w days, t] (>= 1).
    Feature("terminal_id_nb_tx_undelayed_1day_window", "count"),
    Feature("terminal_id_nb_tx_undelayed_7day_window", "count"),
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
