"""Deterministic injection of bad records into a day's landed lines.

Bad records are added, never substituted: every good record still lands, unchanged and in
order, so a parser can be checked to lose nothing. A duplicate is an exact second copy of a
good record; every other bad record is a corrupted copy of a random good record under a fresh
id, ``BAD_ID_OFFSET + kind * 10**10 + source id``, which can collide neither with a good id nor
with another bad one (good ids stay below ``10**10``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from fraud_orchestration.schema import EVENT_FIELDS
from fraud_orchestration.simulator.records import ISO_SECONDS, record_to_line

BAD_ID_OFFSET = 10**12
_KIND_STRIDE = 10**10
EXTRA_FIELD = ("channel", "ecommerce")


@dataclass(frozen=True)
class BadRecordConfig:
    """How many bad records of each kind to add to a day."""

    null_fields: int = 0
    negative_amounts: int = 0
    non_numeric_amounts: int = 0
    malformed_json: int = 0
    duplicate_ids: int = 0
    extra_fields: int = 0
    missing_fields: int = 0
    out_of_day_timestamps: int = 0

    def __post_init__(self) -> None:
        if any(count < 0 for count in self.counts().values()):
            raise ValueError("bad record counts must be >= 0")

    def counts(self) -> dict[str, int]:
        return asdict(self)

    @property
    def total(self) -> int:
        return sum(self.counts().values())


@dataclass(frozen=True)
class BadRecordManifest:
    """What :func:`inject_bad_records` did; ``len(good_ids) + n_bad == n_lines``."""

    injected: dict[str, int]
    good_ids: list[int]
    n_lines: int

    @property
    def n_bad(self) -> int:
        return sum(self.injected.values())


def inject_bad_records(
    records: Sequence[dict[str, Any]], bad: BadRecordConfig, seed: int | Sequence[int]
) -> tuple[list[str], BadRecordManifest]:
    """The day's JSON lines: the good records in order, with bad lines spread among them.

    ``records`` are JSON-ready event dicts; the same records, config and seed give the same lines.
    """
    rng = np.random.default_rng(seed)
    bad_lines: list[str] = []
    for kind_no, (kind, count) in enumerate(bad.counts().items(), start=1):
        if count > len(records):
            raise ValueError(f"cannot derive {count} {kind} from {len(records)} good records")
        for source in rng.choice(len(records), size=count, replace=False):
            record = dict(records[source])
            if kind != "duplicate_ids":
                record["transaction_id"] += BAD_ID_OFFSET + kind_no * _KIND_STRIDE
            bad_lines.append(_CORRUPT[kind](record, rng))

    # Good lines keep their order; each bad line goes into a random gap between them.
    slots = np.concatenate(
        [2 * np.arange(len(records)) + 1, 2 * rng.integers(0, len(records) + 1, len(bad_lines))]
    )
    pool = [record_to_line(r) for r in records] + bad_lines
    lines = [pool[i] for i in np.argsort(slots, kind="stable")]
    manifest = BadRecordManifest(
        injected=bad.counts(),
        good_ids=[r["transaction_id"] for r in records],
        n_lines=len(lines),
    )
    return lines, manifest


def _any_field(rng: np.random.Generator) -> str:
    fields = list(EVENT_FIELDS)
    return fields[rng.integers(len(fields))]


def _null_field(record: dict[str, Any], rng: np.random.Generator) -> str:
    record[_any_field(rng)] = None
    return record_to_line(record)


def _negative_amount(record: dict[str, Any], rng: np.random.Generator) -> str:
    record["tx_amount"] = -max(record["tx_amount"], 0.01)
    return record_to_line(record)


def _non_numeric_amount(record: dict[str, Any], rng: np.random.Generator) -> str:
    record["tx_amount"] = f"{record['tx_amount']:.2f}".replace(".", ",") + "€"
    return record_to_line(record)


def _malformed_json(record: dict[str, Any], rng: np.random.Generator) -> str:
    line = record_to_line(record)
    return line[: rng.integers(1, len(line))]  # any proper prefix of an object is invalid JSON


def _duplicate(record: dict[str, Any], rng: np.random.Generator) -> str:
    return record_to_line(record)


def _extra_field(record: dict[str, Any], rng: np.random.Generator) -> str:
    name, value = EXTRA_FIELD
    record[name] = value
    return record_to_line(record)


def _missing_field(record: dict[str, Any], rng: np.random.Generator) -> str:
    del record[_any_field(rng)]
    return record_to_line(record)


def _out_of_day(record: dict[str, Any], rng: np.random.Generator) -> str:
    shift = timedelta(days=int(rng.choice([-1, 1])))
    moment = datetime.fromisoformat(record["tx_datetime"]) + shift
    record["tx_datetime"] = moment.strftime(ISO_SECONDS)
    return record_to_line(record)


_CORRUPT = {
    "null_fields": _null_field,
    "negative_amounts": _negative_amount,
    "non_numeric_amounts": _non_numeric_amount,
    "malformed_json": _malformed_json,
    "duplicate_ids": _duplicate,
    "extra_fields": _extra_field,
    "missing_fields": _missing_field,
    "out_of_day_timestamps": _out_of_day,
}
