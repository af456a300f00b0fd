"""A day's landed events → valid rows + quarantined rows, with nothing lost.

landed = valid + quarantined + duplicates, always. Duplicates (a ``transaction_id`` seen
earlier in landing order, as at-least-once delivery produces) are kept in the quarantine
table too, with their own reason, so every landed line can be found again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from fraud_orchestration.ingestion.parse import (
    PROVENANCE_COLUMNS,
    TYPED_COLUMNS,
    parse_landing_files,
)
from fraud_orchestration.ingestion.validate import run_suite
from fraud_orchestration.partitions import day_bounds_seconds
from fraud_orchestration.schema import RAW_DTYPES

DUPLICATE_REASON = "duplicate_transaction_id"
QUARANTINE_COLUMNS = ["partition_date", *PROVENANCE_COLUMNS, "reason"]


@dataclass(frozen=True)
class IngestedDay:
    valid: pd.DataFrame
    quarantine: pd.DataFrame
    landed: int
    files: int
    expectations: list[dict]

    @property
    def duplicates(self) -> int:
        return int((self.quarantine["reason"] == DUPLICATE_REASON).sum())

    @property
    def quarantined(self) -> int:
        return len(self.quarantine) - self.duplicates

    @property
    def rejected_share(self) -> float:
        """Share of landed lines that were bad (duplicates are expected, so not counted)."""
        return self.quarantined / self.landed if self.landed else 0.0


def ingest_day(day: date, files: list[tuple[str, bytes]]) -> IngestedDay:
    parsed = parse_landing_files(files)
    start, end = day_bounds_seconds(day)
    typed = parsed.typed
    outcome = run_suite(
        "raw_transactions",
        typed[TYPED_COLUMNS],
        {"partition_start_seconds": start, "partition_last_second": end - 1},
    )
    reasons = pd.Series(
        ["; ".join(outcome.failed_rows.get(i, [])) for i in range(len(typed))],
        index=typed.index,
        dtype="object",
    )
    failed = typed[reasons != ""].assign(reason=reasons[reasons != ""])
    passed = typed[reasons == ""].sort_values(["landing_key", "line_number"], kind="stable")
    duplicated = passed["transaction_id"].duplicated(keep="first")
    duplicates = passed[duplicated].assign(reason=DUPLICATE_REASON)
    valid = (
        passed[~duplicated][TYPED_COLUMNS]
        .sort_values(["tx_time_seconds", "transaction_id"], kind="stable")
        .reset_index(drop=True)
    )
    quarantine = pd.concat(
        [
            frame[PROVENANCE_COLUMNS + ["reason"]]
            for frame in (parsed.rejected, failed, duplicates)
            if len(frame)
        ]
        or [pd.DataFrame(columns=PROVENANCE_COLUMNS + ["reason"])],
        ignore_index=True,
    )
    quarantine.insert(0, "partition_date", day.isoformat())
    quarantine["line_number"] = quarantine["line_number"].astype("int64")
    quarantine = quarantine.astype({"raw_line": "string", "reason": "string"})
    return IngestedDay(
        valid=_valid_types(valid),
        quarantine=quarantine[QUARANTINE_COLUMNS].sort_values(
            ["landing_key", "line_number"], kind="stable", ignore_index=True
        ),
        landed=parsed.landed,
        files=len(parsed.files),
        expectations=outcome.summary,
    )


def _valid_types(valid: pd.DataFrame) -> pd.DataFrame:
    """Every column is non-null after validation: use plain numpy types for the lake."""
    return valid.astype(RAW_DTYPES)
