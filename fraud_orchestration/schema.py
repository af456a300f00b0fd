"""The transaction event schema shared by the simulator, the landing parser and every table.

A landed event is one JSON object per line (Firehose-style gzipped JSON lines)::

    {"transaction_id": 17, "tx_datetime": "2018-04-01T00:02:10", "customer_id": 596,
     "terminal_id": 3156, "tx_amount": 57.16, "tx_fraud": 0, "tx_fraud_scenario": 0}

Times are UTC, ISO-8601, whole seconds (a trailing ``Z`` or ``+00:00`` is accepted).
``tx_fraud`` is the label and ``tx_fraud_scenario`` says how the simulator generated it;
the scenario is kept for analysis and never becomes a model feature.
"""

from __future__ import annotations

import pandas as pd

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


RAW_DTYPES: dict[str, str] = {
    "transaction_id": "int64",
    "tx_datetime": "datetime64[us]",
    "tx_time_seconds": "int64",
    "customer_id": "int64",
    "terminal_id": "int64",
    "tx_amount": "float64",
    "tx_fraud": "int32",
    "tx_fraud_scenario": "int32",
}
"""The raw (typed) schema, as ``raw_transactions`` partitions store it."""


def as_raw_transactions(frame: pd.DataFrame) -> pd.DataFrame:
    """An event frame (simulator or handbook, any column case) in the raw schema.

    ``tx_time_seconds`` becomes epoch seconds (UTC) of ``tx_datetime``; the handbook's own
    ``TX_TIME_SECONDS`` counts from 2018-04-01 and is replaced.
    """
    lower = frame.rename(columns=str.lower)
    datetimes = lower["tx_datetime"].astype("datetime64[us]")
    epoch_seconds = (datetimes - pd.Timestamp(0)) // pd.Timedelta(seconds=1)
    typed = lower.assign(tx_datetime=datetimes, tx_time_seconds=epoch_seconds)
    return typed[list(RAW_DTYPES)].astype(RAW_DTYPES)
