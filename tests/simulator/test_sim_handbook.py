import gzip
import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from fraud_orchestration.schema import EVENT_FIELDS
from fraud_orchestration.simulator import (
    FRAME_DTYPES,
    default_handbook_dir,
    handbook_days,
    land_handbook,
    read_handbook_day,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HANDBOOK = default_handbook_dir(PROJECT_ROOT)
FIRST_DAY = date(2018, 4, 1)

needs_handbook = pytest.mark.skipif(
    HANDBOOK is None,
    reason=f"the fraud handbook data set is not in {PROJECT_ROOT.parent}/shared/datasets",
)


def test_default_handbook_dir_is_none_when_absent(tmp_path):
    assert default_handbook_dir(tmp_path / "project") is None


@pytest.mark.handbook
@needs_handbook
def test_handbook_days_cover_the_published_half_year():
    days = handbook_days(HANDBOOK)
    assert (days[0], days[-1], len(days)) == (FIRST_DAY, date(2018, 9, 30), 183)


@pytest.mark.handbook
@needs_handbook
def test_a_handbook_day_maps_onto_the_event_schema():
    raw = pd.read_parquet(HANDBOOK / "raw" / f"{FIRST_DAY}.parquet")
    frame = read_handbook_day(HANDBOOK, FIRST_DAY)
    assert list(frame.columns) == list(EVENT_FIELDS)
    assert frame.dtypes.astype(str).to_dict() == FRAME_DTYPES
    assert len(frame) == len(raw)
    for name in EVENT_FIELDS:
        assert (frame[name].to_numpy() == raw[name.upper()].to_numpy()).all(), name


@pytest.mark.handbook
@needs_handbook
def test_land_handbook_lands_every_transaction_of_the_chosen_days(tmp_path):
    summary = land_handbook(HANDBOOK, tmp_path, days=[FIRST_DAY])
    raw = pd.read_parquet(HANDBOOK / "raw" / f"{FIRST_DAY}.parquet")
    events = [
        json.loads(line)
        for path in sorted(tmp_path.rglob("*.jsonl.gz"))
        for line in gzip.decompress(path.read_bytes()).decode().splitlines()
    ]
    assert summary.n_transactions == len(events) == len(raw)
    assert summary.n_fraud == raw["TX_FRAUD"].sum()
    assert sorted(e["transaction_id"] for e in events) == sorted(raw["TRANSACTION_ID"])
    first = next(e for e in events if e["transaction_id"] == raw["TRANSACTION_ID"].iloc[0])
    assert first["tx_datetime"] == raw["TX_DATETIME"].iloc[0].strftime("%Y-%m-%dT%H:%M:%S")
    assert first["tx_amount"] == raw["TX_AMOUNT"].iloc[0]
