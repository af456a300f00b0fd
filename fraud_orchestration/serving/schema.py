"""Request validation for ``POST /invocations``: JSON (one transaction or a list) or CSV.

A transaction to score carries exactly these fields (no label: ``tx_fraud`` is unknown when a
payment is authorised, so it is refused as an unknown field)::

    transaction_id  integer, 0 <= id < 2**63
    tx_datetime     ISO-8601 string (UTC unless it carries an offset), 1970 <= year < 2100;
                    fractions of a second are dropped, as the landing parser does
    customer_id     integer, 0 <= id < 2**63
    terminal_id     integer, 0 <= id < 2**63
    tx_amount       finite number, 0 <= amount <= 1,000,000

Everything wrong with a request raises :class:`RequestError` carrying the HTTP status
(400 bad content, 413 too large, 415 unsupported media type) and a message naming the
transaction and the field -- never an unhandled exception, so bad input is never a 500.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

FIELDS: tuple[str, ...] = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "tx_amount",
)
"""The request fields, in CSV column order."""

INTEGER_FIELDS = ("transaction_id", "customer_id", "terminal_id")
MAX_ID = 2**63 - 1
MAX_AMOUNT = 1_000_000.0
MAX_DATETIME_LENGTH = 64
EARLIEST = datetime(1970, 1, 1)
LATEST = datetime(2100, 1, 1)
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv",)

_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_DECIMAL_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


class RequestError(Exception):
    """A request the service refuses: ``status`` is the HTTP status, ``code`` a stable slug."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def as_json(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}


class Transaction(NamedTuple):
    transaction_id: int
    tx_datetime: str
    """Normalised ``YYYY-MM-DDTHH:MM:SS`` (UTC, whole seconds)."""
    tx_time_seconds: int
    customer_id: int
    terminal_id: int
    tx_amount: float


@dataclass(frozen=True)
class ParsedRequest:
    transactions: list[Transaction]
    single: bool
    """True when the body was one JSON object (the answer is then one object too)."""


def media_type(content_type: str | None) -> str:
    """``"application/json; charset=utf-8"`` -> ``"application/json"``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_request(body: bytes, content_type: str | None, max_rows: int) -> ParsedRequest:
    kind = media_type(content_type)
    if kind in JSON_TYPES:
        return parse_json(body, max_rows)
    if kind in CSV_TYPES:
        return ParsedRequest(parse_csv(body, max_rows), single=False)
    shown = kind or "none"
    raise RequestError(
        415,
        "unsupported_media_type",
        f"Content-Type {shown!r} is not supported: send application/json or text/csv",
    )


def parse_json(body: bytes, max_rows: int) -> ParsedRequest:
    text = _decode(body)
    if not text.strip():
        raise RequestError(400, "malformed_json", "the body is empty: send a JSON object or list")
    try:
        document = _DECODER.decode(text)
    except _DuplicateKey as error:
        raise RequestError(400, "invalid_transaction", str(error)) from None
    except _NonFiniteConstant as error:
        raise RequestError(
            400, "malformed_json", f"{error} is not valid JSON (numbers must be finite)"
        ) from None
    except json.JSONDecodeError as error:
        raise RequestError(
            400,
            "malformed_json",
            f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}",
        ) from None
    except RecursionError:
        raise RequestError(400, "malformed_json", "malformed JSON: nested too deeply") from None
    except ValueError as error:  # e.g. an integer literal beyond Python's digit limit
        raise RequestError(400, "malformed_json", f"malformed JSON: {str(error)[:120]}") from None
    if isinstance(document, dict):
        return ParsedRequest([validate_transaction(document, "transaction")], single=True)
    if isinstance(document, list):
        _check_count(len(document), max_rows)
        transactions = []
        for index, item in enumerate(document):
            where = f"transactions[{index}]"
            if not isinstance(item, dict):
                raise RequestError(
                    400,
                    "invalid_transaction",
                    f"{where} must be an object, got {_json_type(item)}",
                )
            transactions.append(validate_transaction(item, where))
        _check_unique_ids(transactions)
        return ParsedRequest(transactions, single=False)
    raise RequestError(
        400,
        "invalid_body",
        f"the body must be a transaction object or a list of them, got {_json_type(document)}",
    )


def parse_csv(body: bytes, max_rows: int) -> list[Transaction]:
    text = _decode(body)
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as error:  # NUL bytes, a field beyond the csv module's size limit...
        raise RequestError(400, "invalid_csv", f"unreadable CSV: {error}") from None
    if not rows:
        raise RequestError(
            400, "invalid_csv", f"the CSV is empty: send a header row {','.join(FIELDS)}"
        )
    header = [name.strip() for name in rows[0]]
    missing = [name for name in FIELDS if name not in header]
    extra = [name for name in header if name not in FIELDS]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if missing or extra or repeated:
        problems = []
        if missing:
            problems.append(f"missing {missing}")
        if extra:
            problems.append(f"unknown {extra[:10]}")
        if repeated:
            problems.append(f"repeated {repeated}")
        raise RequestError(
            400,
            "invalid_csv",
            f"the CSV header must be exactly {','.join(FIELDS)} (any order): "
            + "; ".join(problems),
        )
    data = rows[1:]
    _check_count(len(data), max_rows)
    transactions = []
    for number, row in enumerate(data, start=2):
        where = f"CSV line {number}"
        if len(row) != len(header):
            raise RequestError(
                400,
                "invalid_csv",
                f"{where} has {len(row)} values, the header has {len(header)}",
            )
        cells = zip(header, row, strict=True)
        record = {name: _csv_value(name, cell.strip(), where) for name, cell in cells}
        transactions.append(validate_transaction(record, where))
    _check_unique_ids(transactions)
    return transactions


def validate_transaction(record: dict[str, Any], where: str) -> Transaction:
    """One transaction from a decoded JSON object (or a typed CSV row)."""
    missing = [name for name in FIELDS if name not in record]
    if missing:
        raise RequestError(400, "invalid_transaction", f"{where}: missing fields {missing}")
    unknown = sorted(str(name) for name in record if name not in FIELDS)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:10])
        hint = " (labels are never sent for scoring)" if "tx_fraud" in unknown else ""
        raise RequestError(400, "invalid_transaction", f"{where}: unknown fields {shown}{hint}")
    ids = {name: _as_id(record[name], f"{where}.{name}") for name in INTEGER_FIELDS}
    moment, seconds = _as_datetime(record["tx_datetime"], f"{where}.tx_datetime")
    amount = _as_amount(record["tx_amount"], f"{where}.tx_amount")
    return Transaction(
        transaction_id=ids["transaction_id"],
        tx_datetime=moment,
        tx_time_seconds=seconds,
        customer_id=ids["customer_id"],
        terminal_id=ids["terminal_id"],
        tx_amount=amount,
    )


def _as_id(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(
            400, "invalid_transaction", f"{where} must be an integer, got {_json_type(value)}"
        )
    if not 0 <= value <= MAX_ID:
        raise RequestError(
            400, "invalid_transaction", f"{where} must be between 0 and 2**63 - 1, got {value}"
        )
    return value


def _as_amount(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(
            400, "invalid_transaction", f"{where} must be a number, got {_json_type(value)}"
        )
    try:
        amount = float(value)
    except OverflowError:
        raise RequestError(
            400, "invalid_transaction", f"{where} must be at most {MAX_AMOUNT:.0f}"
        ) from None
    if not math.isfinite(amount):
        raise RequestError(400, "invalid_transaction", f"{where} must be finite, got {amount}")
    if amount < 0:
        raise RequestError(400, "invalid_transaction", f"{where} must be >= 0, got {amount}")
    if amount > MAX_AMOUNT:
        raise RequestError(
            400, "invalid_transaction", f"{where} must be at most {MAX_AMOUNT:.0f}, got {amount}"
        )
    return amount


def _as_datetime(value: Any, where: str) -> tuple[str, int]:
    if not isinstance(value, str):
        raise RequestError(
            400,
            "invalid_transaction",
            f"{where} must be an ISO-8601 string, got {_json_type(value)}",
        )
    if len(value) > MAX_DATETIME_LENGTH:
        raise RequestError(
            400, "invalid_transaction", f"{where} is longer than {MAX_DATETIME_LENGTH} characters"
        )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RequestError(
            400,
            "invalid_transaction",
            f"{where} is not an ISO-8601 date-time: {value[:40]!r}",
        ) from None
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # year 1 with a positive offset, 9999 with a negative one
            moment = LATEST if moment.year > 1970 else datetime.min
    if not EARLIEST <= moment < LATEST:
        raise RequestError(
            400, "invalid_transaction", f"{where} must fall in [1970, 2100), got {value[:40]!r}"
        )
    moment = moment.replace(microsecond=0)
    since_epoch = moment - EARLIEST
    seconds = since_epoch.days * 86_400 + since_epoch.seconds
    return moment.isoformat(), seconds


def _csv_value(name: str, cell: str, where: str) -> Any:
    """Type a CSV cell strictly (no ``nan``, ``inf`` or ``1_000`` that Python would accept)."""
    if name in INTEGER_FIELDS:
        if len(cell) > 24 or not _INTEGER_TEXT.fullmatch(cell):
            raise RequestError(
                400, "invalid_transaction", f"{where}.{name} must be an integer, got {cell[:40]!r}"
            )
        return int(cell)
    if name == "tx_amount":
        if len(cell) > 64 or not _DECIMAL_TEXT.fullmatch(cell):
            raise RequestError(
                400,
                "invalid_transaction",
                f"{where}.tx_amount must be a finite decimal number, got {cell[:40]!r}",
            )
        return float(cell)
    return cell


def _check_count(count: int, max_rows: int) -> None:
    if count == 0:
        raise RequestError(400, "empty_request", "no transactions to score")
    if count > max_rows:
        raise RequestError(
            413,
            "too_many_transactions",
            f"{count} transactions in one request; at most {max_rows} are accepted",
        )


def _check_unique_ids(transactions: list[Transaction]) -> None:
    seen: set[int] = set()
    for transaction in transactions:
        if transaction.transaction_id in seen:
            raise RequestError(
                400,
                "invalid_transaction",
                f"transaction_id {transaction.transaction_id} appears more than once",
            )
        seen.add(transaction.transaction_id)


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RequestError(
            400, "invalid_encoding", f"the body is not UTF-8 (byte {error.start})"
        ) from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class _NonFiniteConstant(ValueError):
    pass


class _DuplicateKey(ValueError):
    pass


def _refuse_constant(name: str) -> None:
    raise _NonFiniteConstant(name)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"field {key[:40]!r} appears twice in one object")
        result[key] = value
    return result


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
"""Built once: ``json.loads`` with these arguments builds a decoder on every call."""
