"""At-least-once delivery and replays: the same files landed twice, a day re-run, events
duplicated within a file, across files and across days -- identical outputs and no duplicate
rows in raw, features, the offline store or the batch scores. (Re-running the same landed
files twice is tests/assets/test_idempotency.py; this adds redelivery and scores.)"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta

import dagster as dg
import pandas as pd
import pytest

from fraud_orchestration.assets.scoring import transaction_scores
from fraud_orchestration.resources.feature_store import WRITE_TIME
from fraud_orchestration.resources.model_registry import CARD_FILE
from tests.conftest import as_lines, good_day, land_lines

pytestmark = pytest.mark.reliability

DAYS = [date(2018, 4, 1) + timedelta(days=i) for i in range(2)]
PER_DAY = 200
TABLES = ("raw_transactions", "transaction_features", "transaction_scores")


def land(home) -> None:
    """Day 1: two files, the second repeating 10 events of the first and 5 of its own lines;
    day 2: its events, plus 1 of day 1's redelivered into day 2's folder (Firehose files by
    arrival time, so a late redelivery lands in a later folder)."""
    first, second = good_day(DAYS[0], PER_DAY), good_day(DAYS[1], PER_DAY, first_id=10_000)
    land_lines(home, DAYS[0], as_lines(first[:120]), name="a")
    land_lines(home, DAYS[0], as_lines(first[120:] + first[:10] + first[130:135]), name="b")
    land_lines(home, DAYS[1], as_lines(second + first[50:51]), name="a")


def redeliver(home) -> int:
    """Land every file again under a new name, as a retried Firehose delivery would."""
    copies = 0
    for path in sorted((home / "landing").rglob("*.jsonl.gz")):
        shutil.copyfile(
            path, path.with_name(path.name.replace(".jsonl.gz", "-redelivered.jsonl.gz"))
        )
        copies += 1
    return copies


def deploy_model(defs, instance, model_dir) -> None:
    """The serving tier's tiny model as the deployed version, so scores can be computed."""
    card = json.loads((model_dir / CARD_FILE).read_text())
    registry = defs.resources["model_registry"]
    version = registry.register(model_dir, metrics={}, card={**card, "training_set": "t"})
    registry.approve(version.version, "reliability replay test")

    @dg.asset(name="fraud_endpoint")
    def deployed() -> dg.MaterializeResult:  # what fraud_endpoint records, without a server
        return dg.MaterializeResult(metadata={"model_version": version.version})

    assert dg.materialize([deployed], instance=instance).success


def run(defs, instance) -> None:
    job = defs.resolve_job_def("feature_ingestion")
    for day in DAYS:
        assert job.execute_in_process(partition_key=day.isoformat(), instance=instance).success
        scored = dg.materialize(
            [transaction_scores],
            resources=defs.resources,
            instance=instance,
            partition_key=day.isoformat(),
        )
        assert scored.success


def snapshot(home) -> dict[str, pd.DataFrame]:
    tables = {
        f"{table}/{day}": pd.read_parquet(home / f"lake/{table}/date={day}/data.parquet")
        for table in (*TABLES, "quarantine")
        for day in DAYS
    }
    offline = sorted((home / "feature_store/offline").rglob("*.parquet"))
    tables["offline"] = pd.concat([pd.read_parquet(p) for p in offline], ignore_index=True)
    return tables


def test_redelivery_and_replay_give_identical_outputs_and_no_duplicates(
    defs, home, instance, lake
) -> None:
    land(home)
    deploy_model(defs, instance, lake.model_dir)
    run(defs, instance)
    first = snapshot(home)

    landed = redeliver(home)
    assert landed == 3
    run(defs, instance)  # the replay of both days, now with every file landed twice
    second = snapshot(home)

    for name in first:
        if name.startswith("quarantine"):
            continue
        before, after = first[name], second[name]
        if name == "offline":
            before, after = before.drop(columns=WRITE_TIME), after.drop(columns=WRITE_TIME)
        pd.testing.assert_frame_equal(before, after, obj=name, check_exact=True)

    expected = {DAYS[0]: PER_DAY, DAYS[1]: PER_DAY}
    for table in TABLES:
        for day, rows in expected.items():
            frame = second[f"{table}/{day}"]
            assert len(frame) == rows and not frame["transaction_id"].duplicated().any()
    offline = second["offline"]
    assert len(offline) == 2 * PER_DAY and not offline["transaction_id"].duplicated().any()
    everything = pd.concat([second[f"raw_transactions/{day}"] for day in DAYS])
    assert not everything["transaction_id"].duplicated().any()  # not even across days

    # Nothing lost: every landed line is valid, a duplicate, or quarantined with a reason.
    for day, landed_lines in {DAYS[0]: 2 * 215, DAYS[1]: 2 * 201}.items():
        quarantine = second[f"quarantine/{day}"]
        valid = len(second[f"raw_transactions/{day}"])
        assert valid + len(quarantine) == landed_lines
    late = second[f"quarantine/{DAYS[1]}"]
    assert (late["reason"].str.contains("tx_time_seconds")).sum() == 2 * 1  # day 1's, late
