"""The transaction event schema shared by the simulator, the landing parser and every table.

A landed event is one JSON object per line (Firehose-style gzipped JSON lines)::

    {"transaction_id": 17, "tx_datetime": "2018-04-01T00:02:10", "customer_id": 596,
     "terminal_id": 3156, "tx_amount": 57.16, "tx_fraud": 0, "tx_fraud_scenario": 0}

Times are UTC, ISO-8601, whole seconds (a trailing ``Z`` or ``+00:00`` is accepted).
``tx_fraud`` is the label and ``tx_fraud_scenario`` says how the simulator generated it;
the scenario is kept for analysis and never becomes a model feature.
"""

from __future__ import annotations

EVENT_FIELDS: dict[str, type] = {
    "transaction_id": int,
    "tx_datetime": str,
    "customer_id": int,
    "terminal_id": int,
    "tx_amount": float,
    "tx_fraud": int,
    "tx_fraud_scenario": int,
}
"""Every field a landed event must carry, with its JSON type (int accepted where float is)."""

LABEL = "tx_fraud"
NEVER_A_FEATURE = ("tx_fraud", "tx_fraud_scenario")

LANDING_PREFIX = "landing/transactions"
"""Firehose layout: `<prefix>/YYYY/MM/DD/HH/<stream>-<n>-<YYYY-MM-DD-HH-MM-SS>-<id>.jsonl.gz`."""


def landing_hour_prefix(year: int, month: int, day: int, hour: int) -> str:
    return f"{LANDING_PREFIX}/{year:04d}/{month:02d}/{day:02d}/{hour:02d}"
