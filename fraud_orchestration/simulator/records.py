"""Turning event frames into the JSON records and lines that land.

Two encoders give the same lines for well-formed events: :func:`record_to_line` for any dict
(bad records included) and :func:`frame_to_lines`, a faster one for whole frames.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from fraud_orchestration.schema import EVENT_FIELDS

ISO_SECONDS = "%Y-%m-%dT%H:%M:%S"

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_LINE = (
    '{{"transaction_id":{},"tx_datetime":"{}","customer_id":{},"terminal_id":{},'
    '"tx_amount":{!r},"tx_fraud":{},"tx_fraud_scenario":{}}}'
)


def _columns(frame: pd.DataFrame) -> list[list[Any]]:
    """Native Python values per ``EVENT_FIELDS`` column, ``tx_datetime`` as ISO text."""
    return [
        np.datetime_as_string(frame[name].to_numpy().astype("datetime64[s]"), unit="s").tolist()
        if name == "tx_datetime"
        else frame[name].tolist()
        for name in EVENT_FIELDS
    ]


def frame_to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready dicts (native ints/floats, ISO ``tx_datetime``) in ``EVENT_FIELDS`` order."""
    return [dict(zip(EVENT_FIELDS, row, strict=True)) for row in zip(*_columns(frame), strict=True)]


def record_to_line(record: dict[str, Any]) -> str:
    """One compact JSON line, without the newline."""
    return _ENCODER.encode(record)


def frame_to_lines(frame: pd.DataFrame) -> list[str]:
    """``record_to_line`` of each of ``frame_to_records(frame)``, formatted directly."""
    return [_LINE.format(*row) for row in zip(*_columns(frame), strict=True)]
