"""``make demo``: simulate events, run every partition through the assets, print a summary.

Runs go into the persistent ``DAGSTER_HOME`` under ``FRAUD_HOME`` so that ``make dev``
(the Dagster UI) shows them. Re-running gives the same outputs: the simulator rewrites the
same files and every partition write replaces the previous one.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import date

from dagster import DagsterInstance, Definitions

from fraud_orchestration.settings import Settings

INGESTION_JOB = "daily_ingestion"
ONLINE_STORE_JOB = "online_store_refresh"


@dataclass
class DayReport:
    day: date
    landed: int = 0
    valid: int = 0
    quarantined: int = 0
    duplicates: int = 0
    features: int = 0
    checks_passed: bool = True
    seconds: float = 0.0


def ensure_dagster_home(settings: Settings) -> None:
    """A ``dagster.yaml`` without telemetry (the sandboxed network is closed anyway)."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")


def run_partitions(
    defs: Definitions, instance: DagsterInstance, days: list[date], progress: bool = True
) -> list[DayReport]:
    """Materialize the ingestion job for each day, one run per partition, then the online store."""
    job = defs.resolve_job_def(INGESTION_JOB)
    reports = []
    for number, day in enumerate(days, start=1):
        started = time.perf_counter()
        result = job.execute_in_process(
            partition_key=day.isoformat(), instance=instance, raise_on_error=False
        )
        report = DayReport(day=day, seconds=time.perf_counter() - started)
        for event in result.get_asset_materialization_events():
            metadata = {
                key: value.value
                for key, value in event.step_materialization_data.materialization.metadata.items()
            }
            if event.asset_key.path[-1] == "raw_transactions":
                for field in ("landed", "valid", "quarantined", "duplicates"):
                    setattr(report, field, int(metadata[field]))
            if event.asset_key.path[-1] == "transaction_features":
                report.features = int(metadata["dagster/row_count"])
        report.checks_passed = result.success and all(
            evaluation.passed for evaluation in result.get_asset_check_evaluations()
        )
        reports.append(report)
        if progress:
            _progress(
                number, len(days), f"{day} {'ok' if report.checks_passed else 'CHECK FAILED'}"
            )
    defs.resolve_job_def(ONLINE_STORE_JOB).execute_in_process(instance=instance)
    return reports


def _progress(done: int, total: int, label: str) -> None:
    width = 30
    filled = width * done // total
    bar = "█" * filled + "·" * (width - filled)
    sys.stderr.write(f"\r[{bar}] {done}/{total} {100 * done // total:3d}%  {label}   ")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def summary_table(reports: list[DayReport], wall_seconds: float) -> str:
    header = "day         landed   valid  quarantined  duplicates  features  checks  seconds"
    lines = [header, "-" * len(header)]
    for r in reports:
        lines.append(
            f"{r.day}  {r.landed:>7} {r.valid:>7} {r.quarantined:>12} {r.duplicates:>11} "
            f"{r.features:>9}  {'pass' if r.checks_passed else 'FAIL':>6} {r.seconds:>8.2f}"
        )
    total = DayReport(day=date.min)
    for r in reports:
        for field in ("landed", "valid", "quarantined", "duplicates", "features"):
            setattr(total, field, getattr(total, field) + getattr(r, field))
    lines.append("-" * len(header))
    lines.append(
        f"{'total':<10}  {total.landed:>7} {total.valid:>7} {total.quarantined:>12} "
        f"{total.duplicates:>11} {total.features:>9}"
    )
    lines.append(f"wall time {wall_seconds:.1f} s for {len(reports)} partitions")
    return "\n".join(lines)
