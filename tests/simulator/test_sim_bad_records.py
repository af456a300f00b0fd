import json
from collections import Counter
from dataclasses import fields
from datetime import datetime

import pytest

from fraud_orchestration.schema import EVENT_FIELDS
from fraud_orchestration.simulator import (
    BAD_ID_OFFSET,
    BadRecordConfig,
    SimulationConfig,
    frame_to_lines,
    frame_to_records,
    generate_day,
    inject_bad_records,
    record_to_line,
)
from fraud_orchestration.simulator.bad_records import _CORRUPT

CONFIG = SimulationConfig(n_customers=200, n_terminals=400, n_days=2, seed=3)
DAY = CONFIG.days[1]
BAD = BadRecordConfig(
    null_fields=3,
    negative_amounts=4,
    non_numeric_amounts=5,
    malformed_json=6,
    duplicate_ids=7,
    extra_fields=8,
    missing_fields=9,
    out_of_day_timestamps=10,
)


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return frame_to_records(generate_day(CONFIG, DAY))


def test_every_kind_has_a_corruption():
    assert list(_CORRUPT) == [f.name for f in fields(BadRecordConfig)]


def test_the_fast_frame_encoder_matches_the_record_encoder():
    frame = generate_day(CONFIG, DAY)
    lines = frame_to_lines(frame)
    assert lines == [record_to_line(r) for r in frame_to_records(frame)]
    assert json.loads(lines[0]).keys() == EVENT_FIELDS.keys()
    assert datetime.fromisoformat(json.loads(lines[0])["tx_datetime"]).date() == DAY


def test_no_bad_records_means_just_the_good_lines(records):
    lines, manifest = inject_bad_records(records, BadRecordConfig(), seed=0)
    assert lines == [record_to_line(r) for r in records]
    assert manifest.n_bad == 0


def test_manifest_adds_up_and_every_good_record_lands_once_unchanged(records):
    lines, manifest = inject_bad_records(records, BAD, seed=1)
    assert manifest.injected == BAD.counts()
    assert manifest.good_ids == [r["transaction_id"] for r in records]
    assert manifest.n_lines == len(lines) == len(records) + BAD.total
    good_lines = [record_to_line(r) for r in records]
    seen = Counter(lines)
    assert all(seen[line] in (1, 2) for line in good_lines)
    assert sum(seen[line] == 2 for line in good_lines) == BAD.duplicate_ids
    remaining = iter(lines)  # the good lines are a subsequence of the landed ones
    assert all(any(line == good for line in remaining) for good in good_lines)


def _parse(line: str) -> dict | None:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def test_each_kind_is_injected_as_many_times_as_asked(records):
    lines, _ = inject_bad_records(records, BAD, seed=1)
    good_lines = {record_to_line(r) for r in records}
    bad = [_parse(line) for line in lines if line not in good_lines]
    parsed = [r for r in bad if r is not None]
    assert len(bad) - len(parsed) == BAD.malformed_json
    assert sum(None in r.values() for r in parsed) == BAD.null_fields
    assert sum(len(r) < len(EVENT_FIELDS) for r in parsed) == BAD.missing_fields
    assert sum(len(r.keys() - EVENT_FIELDS.keys()) > 0 for r in parsed) == BAD.extra_fields
    amounts = [r.get("tx_amount") for r in parsed]
    assert sum(isinstance(a, str) and a.endswith("€") and "," in a for a in amounts) == (
        BAD.non_numeric_amounts
    )
    assert sum(isinstance(a, float) and a < 0 for a in amounts) == BAD.negative_amounts
    other_days = [
        r
        for r in parsed
        if isinstance(r.get("tx_datetime"), str)
        and datetime.fromisoformat(r["tx_datetime"]).date() != DAY
    ]
    assert len(other_days) == BAD.out_of_day_timestamps
    assert {
        abs((datetime.fromisoformat(r["tx_datetime"]).date() - DAY).days) for r in other_days
    } == {1}


def test_bad_ids_never_collide_with_good_ones_or_each_other(records):
    lines, manifest = inject_bad_records(records, BAD, seed=1)
    good = set(manifest.good_ids)
    good_lines = {record_to_line(r) for r in records}
    bad_ids = [
        r["transaction_id"]
        for line in lines
        if line not in good_lines
        and (r := _parse(line)) is not None
        and isinstance(r.get("transaction_id"), int)
    ]
    assert all(i >= BAD_ID_OFFSET for i in bad_ids)
    assert len(set(bad_ids)) == len(bad_ids)
    assert not good & set(bad_ids)


def test_injection_is_deterministic_by_seed(records):
    assert inject_bad_records(records, BAD, seed=1) == inject_bad_records(records, BAD, seed=1)
    assert (
        inject_bad_records(records, BAD, seed=1)[0] != inject_bad_records(records, BAD, seed=2)[0]
    )


def test_refuses_more_bad_records_than_it_can_derive(records):
    with pytest.raises(ValueError):
        inject_bad_records(records[:3], BadRecordConfig(null_fields=4), seed=0)
    with pytest.raises(ValueError):
        BadRecordConfig(null_fields=-1)
