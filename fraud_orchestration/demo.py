"""``make demo``: simulate events and run the whole lifecycle on embedded parts.

1. the first days through raw → features → offline store (no model exists yet);
2. the nightly retraining: training set → model → gate → endpoint (the first model faces
   the floors only; the local scoring service starts on 127.0.0.1 and serves it);
3. the remaining days through the full daily job, which also scores and reports drift;
4. the online store, a second retraining gated against the first model, and the serving
   cost estimate for the measured volume and latency.

Runs go into the persistent ``DAGSTER_HOME`` under ``FRAUD_HOME`` so that ``make dev``
(the Dagster UI) shows them. Re-running gives the same outputs: the simulator rewrites the
same files and every partition write replaces the previous one.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, fields
from datetime import date, timedelta

from dagster import DagsterInstance, Definitions, ExecuteInProcessResult

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
MIN_DAYS_FOR_A_MODEL = 37 + 28 + 14
"""The 37-day feature look-back warm-up, a 14 + 7 + 7-day training set, then 14 scored days."""
SCORED_DAYS = 14


@dataclass
class DayReport:
    day: date
    landed: int = 0
    valid: int = 0
    quarantined: int = 0
    duplicates: int = 0
    features: int = 0
    scored: int = 0
    run_succeeded: bool = True
    failed_checks: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def checks(self) -> str:
        return ",".join(self.failed_checks) or "pass"


@dataclass
class ModelReport:
    version: int
    verdict: str
    auc_roc: float
    avg_precision: float
    card_precision_at_100: float
    seconds: float


def ensure_dagster_home(home) -> None:
    """A ``dagster.yaml`` without telemetry (the sandboxed network is closed anyway)."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")


def run_lifecycle(
    defs: Definitions, instance: DagsterInstance, days: list[date]
) -> tuple[list[DayReport], list[ModelReport]]:
    trains = len(days) >= MIN_DAYS_FOR_A_MODEL
    first_phase = days[:-SCORED_DAYS] if trains else days
    reports = run_days(defs, instance, "feature_ingestion", first_phase)
    _execute(defs, instance, "online_store_refresh")
    models = []
    if trains:
        models.append(retrain(defs, instance, cutoff=first_phase[-1] + timedelta(days=1)))
        reports += run_days(defs, instance, "daily_ingestion", days[len(first_phase) :])
    _execute(defs, instance, "online_store_refresh")
    if trains:
        models.append(retrain(defs, instance, cutoff=days[-1] + timedelta(days=1)))
        _execute(defs, instance, "serving_cost")
    return reports, models


def run_days(
    defs: Definitions, instance: DagsterInstance, job: str, days: list[date]
) -> list[DayReport]:
    reports = []
    for number, day in enumerate(days, start=1):
        started = time.perf_counter()
        result = _execute(defs, instance, job, partition_key=day.isoformat())
        report = DayReport(day=day, seconds=time.perf_counter() - started)
        for asset, metadata in _materializations(result):
            if asset == "raw_transactions":
                for name in ("landed", "valid", "quarantined", "duplicates"):
                    setattr(report, name, int(metadata[name]))
            elif asset == "transaction_features":
                report.features = int(metadata["dagster/row_count"])
            elif asset == "transaction_scores":
                report.scored = int(metadata["dagster/row_count"])
        report.run_succeeded = result.success
        report.failed_checks = tuple(
            e.check_name for e in result.get_asset_check_evaluations() if not e.passed
        )
        reports.append(report)
        state = report.checks if result.success else "RUN FAILED"
        _progress(number, len(days), f"{job} {day} {state}")
    return reports


def retrain(defs: Definitions, instance: DagsterInstance, cutoff: date) -> ModelReport:
    """The nightly retraining on the days before ``cutoff``: spelt out, so a re-run over a
    store that already holds later days trains on the same windows as the first run."""
    started = time.perf_counter()
    print("Retraining: training set → model → gate ...", file=sys.stderr)
    training_set = {"training_set": {"config": {"cutoff": cutoff.isoformat()}}}
    result = _execute(defs, instance, "nightly_retraining", config={"ops": training_set})
    metadata = dict(_materializations(result))["fraud_model"]
    return ModelReport(
        version=int(metadata["model_version"]),
        verdict=str(metadata["verdict"]),
        auc_roc=float(metadata["auc_roc"]),
        avg_precision=float(metadata["avg_precision"]),
        card_precision_at_100=float(metadata["card_precision_at_100"]),
        seconds=time.perf_counter() - started,
    )


def _execute(
    defs, instance, job: str, partition_key: str | None = None, config: dict | None = None
) -> ExecuteInProcessResult:
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        partition_key=partition_key,
        run_config={**QUIET, **(config or {})},
        raise_on_error=False,
    )


def _materializations(result: ExecuteInProcessResult):
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        metadata = materialization.metadata
        yield materialization.asset_key.path[-1], {k: value.value for k, value in metadata.items()}


def _progress(done: int, total: int, label: str) -> None:
    width = 30
    filled = width * done // total
    bar = "█" * filled + "·" * (width - filled)
    sys.stderr.write(f"\r[{bar}] {done}/{total} {100 * done // total:3d}%  {label}   ")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def summary(reports: list[DayReport], models: list[ModelReport], wall_seconds: float) -> str:
    header = (
        "day         landed   valid  quarantined  duplicates  features  scored  checks  seconds"
    )
    lines = [header, "-" * len(header)]
    for r in reports:
        lines.append(
            f"{r.day}  {r.landed:>7} {r.valid:>7} {r.quarantined:>12} {r.duplicates:>11} "
            f"{r.features:>9} {r.scored:>7} {r.seconds:>8.2f}  "
            f"{r.checks if r.run_succeeded else 'RUN FAILED'}"
        )
    totals = {
        f.name: sum(getattr(r, f.name) for r in reports)
        for f in fields(DayReport)
        if f.name in ("landed", "valid", "quarantined", "duplicates", "features", "scored")
    }
    lines.append("-" * len(header))
    lines.append(
        f"{'total':<10}  {totals['landed']:>7} {totals['valid']:>7} {totals['quarantined']:>12} "
        f"{totals['duplicates']:>11} {totals['features']:>9} {totals['scored']:>7}"
    )
    for m in models:
        lines.append(
            f"model v{m.version}: {m.verdict}; test AUC {m.auc_roc:.3f}, AP {m.avg_precision:.3f}, "
            f"CP@100 {m.card_precision_at_100:.3f} ({m.seconds:.1f} s)"
        )
    lines.append(f"wall time {wall_seconds:.1f} s for {len(reports)} partitions")
    return "\n".join(lines)
