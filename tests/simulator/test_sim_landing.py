import gzip
import json
import re
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from fraud_orchestration.schema import LANDING_PREFIX
from fraud_orchestration.simulator import (
    BadRecordConfig,
    LandingSink,
    LocalLandingSink,
    SimulationConfig,
    clear_day,
    generate,
    land_lines,
    landing_key,
    simulate,
    simulate_day,
)

CONFIG = SimulationConfig(n_customers=150, n_terminals=300, n_days=3, seed=11)
BAD = BadRecordConfig(null_fields=1, malformed_json=2, duplicate_ids=2, out_of_day_timestamps=3)
KEY = re.compile(
    rf"{LANDING_PREFIX}/(\d{{4}})/(\d{{2}})/(\d{{2}})/(\d{{2}})/"
    r"fraud-events-1-(\d{4})-(\d{2})-(\d{2})-(\d{2})-00-00-\d{4}\.jsonl\.gz"
)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _lines(data: bytes) -> list[str]:
    return gzip.decompress(data).decode("utf-8").splitlines()


class MemorySink:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data


def test_landing_key_follows_the_firehose_layout():
    assert landing_key(date(2018, 4, 1), 7, 0) == (
        "landing/transactions/2018/04/01/07/fraud-events-1-2018-04-01-07-00-00-0000.jsonl.gz"
    )


def test_simulate_lands_every_transaction_in_the_folder_of_its_hour(tmp_path):
    summary = simulate(CONFIG, tmp_path)
    tree = _tree(tmp_path)
    assert sorted(tree) == sorted(key for day in summary.days for key in day.keys)
    ids = []
    for key, data in tree.items():
        folder = KEY.fullmatch(key)
        assert folder is not None, key
        assert folder.groups()[:4] == folder.groups()[4:]
        assert data[4:8] == b"\0\0\0\0"  # gzip mtime
        for line in _lines(data):
            event = json.loads(line)
            assert event["tx_datetime"][:13] == "{}-{}-{}T{}".format(*folder.groups()[:4])
            ids.append(event["transaction_id"])
    frame = generate(CONFIG)
    assert sorted(ids) == frame["transaction_id"].tolist()
    assert summary.n_transactions == summary.n_lines == len(frame)
    assert summary.n_fraud == frame["tx_fraud"].sum()
    assert [d.day for d in summary.days] == CONFIG.days


def test_landing_is_byte_for_byte_deterministic_and_idempotent(tmp_path):
    simulate(CONFIG, tmp_path / "a", bad=BAD)
    simulate(CONFIG, tmp_path / "b", bad=BAD)
    first = _tree(tmp_path / "a")
    assert first == _tree(tmp_path / "b")
    simulate(CONFIG, tmp_path / "a", bad=BAD)
    assert _tree(tmp_path / "a") == first
    simulate(replace(CONFIG, seed=CONFIG.seed + 1), tmp_path / "c", bad=BAD)
    assert _tree(tmp_path / "c") != first


def test_bad_records_go_only_into_the_bad_days(tmp_path):
    bad_day = CONFIG.days[1]
    summary = simulate(CONFIG, tmp_path, bad=BAD, bad_days=[bad_day])
    for day in summary.days:
        expected = BAD.total if day.day == bad_day else 0
        assert day.n_lines == day.n_transactions + expected
        assert day.injected == (BAD.counts() if day.day == bad_day else {})
    landed = sum(len(_lines(data)) for data in _tree(tmp_path).values())
    assert landed == summary.n_lines


def test_unreadable_or_other_day_events_land_in_the_last_hour_of_the_day(tmp_path):
    day = date(2018, 4, 2)
    lines = [
        '{"transaction_id":1,"tx_datetime":"2018-04-02T05:06:07"}',
        '{"transaction_id":2,"tx_datetime":"2018-04-01T05:06:07"}',
        '{"transaction_id":3,"tx_datetime":null}',
        '{"transaction_id":4,"tx_datetime":"2018-04-02T06:0',
        '{"transaction_id":5,"tx_datetime":"2018-04-02T07:00:00Z"}',
    ]
    keys = land_lines(LocalLandingSink(tmp_path), day, lines)
    tree = _tree(tmp_path)
    hours = {int(KEY.fullmatch(k)[4]): _lines(tree[k]) for k in keys}
    assert hours == {5: [lines[0]], 7: [lines[4]], 23: lines[1:4]}


def test_big_hours_are_split_into_numbered_files(tmp_path):
    lines = [f'{{"transaction_id":{i},"tx_datetime":"2018-04-01T10:00:00"}}' for i in range(5)]
    keys = land_lines(LocalLandingSink(tmp_path), date(2018, 4, 1), lines, max_lines_per_file=2)
    assert [k[-13:] for k in keys] == ["0000.jsonl.gz", "0001.jsonl.gz", "0002.jsonl.gz"]
    assert [line for k in keys for line in _lines((tmp_path / k).read_bytes())] == lines


def test_clear_day_then_relanding_restores_the_clean_day(tmp_path):
    simulate(CONFIG, tmp_path / "clean")
    corrupted = CONFIG.days[1]
    simulate(
        CONFIG, tmp_path / "fixed", bad=BadRecordConfig(duplicate_ids=50), bad_days=[corrupted]
    )
    assert _tree(tmp_path / "fixed") != _tree(tmp_path / "clean")
    clear_day(tmp_path / "fixed", corrupted)
    assert not (tmp_path / "fixed" / LANDING_PREFIX / f"{corrupted:%Y/%m/%d}").exists()
    assert (tmp_path / "fixed" / LANDING_PREFIX / f"{CONFIG.days[0]:%Y/%m/%d}").exists()
    clear_day(tmp_path / "fixed", corrupted)  # nothing left to clear is fine
    simulate_day(CONFIG, corrupted, tmp_path / "fixed")
    assert _tree(tmp_path / "fixed") == _tree(tmp_path / "clean")


def test_a_day_landed_alone_is_the_same_as_within_a_full_run(tmp_path):
    simulate(CONFIG, tmp_path / "all", bad=BAD)
    for day in CONFIG.days:
        summary = simulate_day(CONFIG, day, tmp_path / "one", bad=BAD)
        assert summary.n_lines == summary.n_transactions + BAD.total
    assert _tree(tmp_path / "one") == _tree(tmp_path / "all")


def test_any_sink_can_receive_the_landing(tmp_path):
    sink = MemorySink()
    assert isinstance(sink, LandingSink)
    assert isinstance(LocalLandingSink(tmp_path), LandingSink)
    simulate(CONFIG, sink)
    simulate(CONFIG, tmp_path)
    assert sink.objects == _tree(tmp_path)


def test_local_sink_writes_atomically_and_leaves_no_temporary_files(tmp_path):
    sink = LocalLandingSink(tmp_path)
    sink.put("a/b/c.jsonl.gz", b"one")
    sink.put("a/b/c.jsonl.gz", b"two")
    assert _tree(tmp_path) == {"a/b/c.jsonl.gz": b"two"}


def test_a_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    sink = LocalLandingSink(tmp_path)
    sink.put("k.gz", b"old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr("fraud_orchestration.simulator.landing.os.replace", fail)
    with pytest.raises(OSError):
        sink.put("k.gz", b"new")
    assert _tree(tmp_path) == {"k.gz": b"old"}
