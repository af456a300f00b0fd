"""Materializing the same partitions twice gives identical outputs and no duplicate rows."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from fraud_orchestration.resources.feature_store import WRITE_TIME
from tests.conftest import as_lines, good_day, land_lines

DAYS = [date(2018, 4, 1) + timedelta(days=i) for i in range(3)]


def _snapshot(home) -> dict[str, pd.DataFrame]:
    tables = {}
    for table in ("raw_transactions", "quarantine", "transaction_features"):
        for day in DAYS:
            tables[f"{table}/{day}"] = pd.read_parquet(
                home / f"lake/{table}/date={day}/data.parquet"
            )
    offline = sorted((home / "feature_store/offline").rglob("*.parquet"))
    tables["offline"] = pd.concat([pd.read_parquet(path) for path in offline], ignore_index=True)
    return tables


def _run(defs, instance) -> None:
    job = defs.resolve_job_def("feature_ingestion")
    for day in DAYS:
        assert job.execute_in_process(partition_key=day.isoformat(), instance=instance).success


def test_rerun_gives_identical_outputs_and_no_duplicates(defs, home, instance):
    for number, day in enumerate(DAYS):
        records = good_day(day, 300, first_id=number * 1000)
        land_lines(home, day, as_lines(records) + as_lines(records[:5]))

    _run(defs, instance)
    first = _snapshot(home)
    _run(defs, instance)
    second = _snapshot(home)

    assert first.keys() == second.keys()
    for name in first:
        before, after = first[name], second[name]
        if name == "offline":
            assert (after[WRITE_TIME] >= before[WRITE_TIME]).all()
            before, after = before.drop(columns=WRITE_TIME), after.drop(columns=WRITE_TIME)
        pd.testing.assert_frame_equal(before, after, obj=name, check_exact=True)
    offline = second["offline"]
    assert len(offline) == 900
    assert not offline["transaction_id"].duplicated().any()
    assert len(list((home / "feature_store/offline").rglob("*.parquet"))) == len(DAYS)
