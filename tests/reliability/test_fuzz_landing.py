"""The landing parser under hypothesis: random bytes, gzip garbage, huge fields, NaN and
infinities, odd unicode, deep nesting, wrong types. Always a quarantined row with a reason,
never an exception, never a lost good record (good records mixed into a bad file are all
kept). Bounded and derandomized: the same examples every run."""

from __future__ import annotations

import gzip
import io
import json
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_orchestration.ingestion.parse import parse_landing_files
from fraud_orchestration.ingestion.raw import ingest_day
from fraud_orchestration.resources.lake import LocalLake
from fraud_orchestration.schema import EVENT_FIELDS
from tests.conftest import event

pytestmark = pytest.mark.reliability

DAY = date(2018, 4, 2)
GOOD_IDS = range(1_000_000, 1_000_040)
FUZZ = settings(
    database=None,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ODD_TEXT = st.text(
    st.characters(codec="utf-8", categories=("L", "M", "N", "P", "S", "Z", "C")), max_size=40
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | ODD_TEXT
    | st.just("\ud800")  # a lone surrogate: JSON-escaped by json.dumps, valid JSON
    | st.just("9" * 5000)  # beyond Python's integer-string limit once unquoted
    | st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "2018-04-02"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(ODD_TEXT | st.just("\udfff"), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def bad_lines(draw) -> str:
    kind = draw(st.sampled_from(["event", "json", "text", "deep", "huge", "unquoted"]))
    if kind == "event":  # a real event with some fields changed, dropped or added
        record = event(draw(st.integers(0, 999_999)), "2018-04-02T10:00:00")
        for name in draw(st.lists(st.sampled_from([*EVENT_FIELDS, "extra"]), max_size=3)):
            if draw(st.booleans()):
                record[name] = draw(VALUES)
            else:
                record.pop(name, None)
        if isinstance(record.get("transaction_id"), int) and record["transaction_id"] in GOOD_IDS:
            record["transaction_id"] = -1
        return json.dumps(record, allow_nan=True)
    if kind == "json":
        return json.dumps(draw(VALUES), allow_nan=True)
    if kind == "text":
        return draw(ODD_TEXT).replace("\n", " ")
    if kind == "deep":
        depth = draw(st.sampled_from([10, 5_000, 200_000]))
        return '{"a":' * depth + "1" + "}" * depth
    if kind == "huge":
        return json.dumps(event(7, "2018-04-02T10:00:00", tx_amount="x" * 300_000))
    number = draw(st.sampled_from(["1" + "0" * 400, "1" + "0" * 5000, "-Infinity", "NaN"]))
    return json.dumps(event(8, "2018-04-02T10:00:00")).replace('"tx_amount": 18.0', number)


def good_lines() -> list[str]:
    return [
        json.dumps(
            event(i, f"2018-04-02T{i % 24:02d}:{i % 60:02d}:00", customer_id=i % 5, tx_amount=12.5)
        )
        for i in GOOD_IDS
    ]


def mixed_file(draw_bad: list[str], positions: list[int]) -> list[str]:
    lines = good_lines()
    for position, line in zip(positions, draw_bad, strict=False):
        lines.insert(position % (len(lines) + 1), line)
    return lines


@settings(FUZZ, max_examples=150)
@given(st.lists(bad_lines(), min_size=1, max_size=6), st.lists(st.integers(0, 60), max_size=6))
def test_bad_lines_are_quarantined_and_good_ones_all_kept(bad, positions) -> None:
    lines = mixed_file(bad, positions)
    parsed = parse_landing_files(
        [("landing/mixed.jsonl.gz", gzip.compress("\n".join(lines).encode()))]
    )
    assert parsed.landed == len(parsed.typed) + len(parsed.rejected)
    assert set(GOOD_IDS) <= set(parsed.typed["transaction_id"].dropna())
    assert parsed.rejected["reason"].str.len().gt(0).all()


@settings(FUZZ, max_examples=12)
@given(st.lists(bad_lines(), min_size=1, max_size=4), st.binary(max_size=200))
def test_a_day_with_bad_files_keeps_every_good_record_and_writes(bad, garbage) -> None:
    """Through validation and the quarantine table's Parquet write, with a file of random
    bytes and a gzip of random bytes beside the mixed one."""
    files = [
        ("landing/a.jsonl.gz", gzip.compress("\n".join(mixed_file(bad, [3, 17, 29])).encode())),
        ("landing/b.jsonl.gz", garbage),
        ("landing/c.jsonl.gz", gzip.compress(garbage)),
    ]
    result = ingest_day(DAY, files)
    assert result.landed == len(result.valid) + result.quarantined + result.duplicates
    assert set(GOOD_IDS) <= set(result.valid["transaction_id"])
    assert not result.valid["transaction_id"].duplicated().any()
    # The quarantine must be writable as Parquet (UTF-8): a lone surrogate once broke it.
    pq.write_table(pa.Table.from_pandas(result.quarantine, preserve_index=False), io.BytesIO())


@settings(FUZZ, max_examples=60)
@given(st.binary(max_size=4096))
def test_random_bytes_are_one_quarantined_file(blob) -> None:
    parsed = parse_landing_files([("landing/x.jsonl.gz", blob)])
    assert parsed.landed == len(parsed.typed) + len(parsed.rejected) >= 0


def test_a_truncated_file_is_quarantined_whole(tmp_path) -> None:
    """A truncated gzip object cannot be read: it is one quarantined row naming the file
    (the landing zone keeps the object, so it can be re-landed) -- never an exception."""
    blob = gzip.compress("\n".join(good_lines()).encode())
    parsed = parse_landing_files([("landing/cut.jsonl.gz", blob[: len(blob) // 2])])
    assert len(parsed.typed) == 0 and parsed.landed == 1
    assert parsed.rejected["reason"].item().startswith("unreadable_file")
    lake = LocalLake(root=str(tmp_path))
    result = ingest_day(DAY, [("landing/cut.jsonl.gz", blob[: len(blob) // 2])])
    lake.write_partition("quarantine", DAY, pa.Table.from_pandas(result.quarantine))
