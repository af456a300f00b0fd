"""Parse Firehose-style gzipped JSON lines into typed rows, rejecting what cannot be typed.

Structural problems (unreadable file, malformed JSON, missing or unknown fields, values of
the wrong type) are decided here, per line, because no table exists yet to validate.
Everything that *can* be typed, nulls included, goes on to the Great Expectations suite,
which decides value-level problems (nulls, ranges, labels, timestamps outside the day).
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from fraud_orchestration.schema import EVENT_FIELDS, RAW_DTYPES

INT64_MAX = 2**63 - 1
INTEGER_FIELDS = ("transaction_id", "customer_id", "terminal_id", "tx_fraud", "tx_fraud_scenario")

TYPED_COLUMNS = list(RAW_DTYPES)
"""Columns of a parsed (typed) row; ``tx_time_seconds`` is whole epoch seconds, UTC."""

PROVENANCE_COLUMNS = ["landing_key", "line_number", "raw_line"]


@dataclass
class ParsedLanding:
    """Typed candidate rows plus the lines rejected while typing them."""

    typed: pd.DataFrame
    rejected: pd.DataFrame
    landed: int = 0
    files: list[str] = field(default_factory=list)


class _Reject(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_landing_files(files: list[tuple[str, bytes]]) -> ParsedLanding:
    """Parse every non-blank line of every file; every line ends up typed or rejected."""
    typed: list[dict] = []
    rejected: list[dict] = []
    for key, blob in files:
        try:
            text = gzip.decompress(blob)
        except (OSError, EOFError, zlib.error) as error:
            rejected.append(_rejection(key, 0, blob[:4096].hex(), f"unreadable_file: {error}"))
            continue
        for number, raw in enumerate(text.split(b"\n"), start=1):
            if not raw.strip():
                continue
            line = raw.decode("utf-8", errors="replace")
            try:
                if "\ufffd" in line and raw.decode("utf-8", errors="ignore") != line:
                    raise _Reject("invalid_utf8")
                row = _type_record(line)
            except _Reject as reject:
                rejected.append(_rejection(key, number, line, reject.reason))
                continue
            row.update(landing_key=key, line_number=number, raw_line=line)
            typed.append(row)
    typed_frame = pd.DataFrame(typed, columns=TYPED_COLUMNS + PROVENANCE_COLUMNS)
    for column in INTEGER_FIELDS + ("tx_time_seconds", "line_number"):
        typed_frame[column] = typed_frame[column].astype("Int64")
    typed_frame["tx_amount"] = typed_frame["tx_amount"].astype("float64")
    typed_frame["tx_datetime"] = pd.to_datetime(typed_frame["tx_datetime"])
    return ParsedLanding(
        typed=typed_frame,
        rejected=pd.DataFrame(rejected, columns=PROVENANCE_COLUMNS + ["reason"]),
        landed=len(typed) + len(rejected),
        files=[key for key, _ in files],
    )


def _rejection(key: str, number: int, line: str, reason: str) -> dict:
    # A reason may quote a JSON-escaped lone surrogate (an unknown field name): escape it,
    # or the quarantine table could not be written as UTF-8.
    reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
    return {"landing_key": key, "line_number": number, "raw_line": line, "reason": reason}


def _type_record(line: str) -> dict:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as error:  # ValueError: also an over-long integer
        raise _Reject(f"malformed_json: {error.__class__.__name__}") from None
    if not isinstance(record, dict):
        raise _Reject(f"not_an_object: {type(record).__name__}")
    missing = sorted(set(EVENT_FIELDS) - record.keys())
    if missing:
        raise _Reject("missing_fields: " + ",".join(missing))
    unknown = sorted(record.keys() - set(EVENT_FIELDS))
    if unknown:
        raise _Reject("unknown_fields: " + ",".join(unknown)[:200])
    row: dict[str, object] = {name: _as_int(name, record[name]) for name in INTEGER_FIELDS}
    row["tx_amount"] = _as_float(record["tx_amount"])
    row["tx_datetime"], row["tx_time_seconds"] = _as_time(record["tx_datetime"])
    return row


def _as_int(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Reject(f"wrong_type: {name} must be an integer, got {type(value).__name__}")
    if not -INT64_MAX <= value <= INT64_MAX:
        raise _Reject(f"wrong_type: {name} does not fit in 64 bits")
    return value


def _as_float(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Reject(f"wrong_type: tx_amount must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise _Reject("wrong_type: tx_amount does not fit in a float") from None
    return None if math.isnan(number) else number


def _as_time(value: object) -> tuple[datetime | None, int | None]:
    if value is None:
        return None, None
    if not isinstance(value, str) or len(value) > 64:
        raise _Reject("wrong_type: tx_datetime must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _Reject("wrong_type: tx_datetime is not ISO-8601") from None
    try:
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        seconds = math.floor(moment.replace(tzinfo=UTC).timestamp())
    except OverflowError:  # e.g. year 1 with a positive offset
        raise _Reject("wrong_type: tx_datetime is out of range") from None
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None), seconds
