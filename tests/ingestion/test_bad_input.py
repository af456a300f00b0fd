"""A day with every kind of bad record: nothing lost, valid rows exact, check and blocking."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
from dagster import AssetKey

from fraud_orchestration.ingestion.raw import DUPLICATE_REASON, ingest_day
from tests.conftest import as_lines, event, good_day, land_lines

DAY = date(2018, 4, 2)


def bad_lines() -> dict[str, str]:
    """One line per kind of bad record, mapped to the reason it must be quarantined with."""
    good = event(10_000, "2018-04-02T10:00:00")
    at = "2018-04-02T10:00:00"
    nan = (
        '{"transaction_id": 10008, "tx_datetime": "2018-04-02T10:00:00", "customer_id": 1, '
        '"terminal_id": 1, "tx_amount": NaN, "tx_fraud": 0, "tx_fraud_scenario": 0}'
    )
    return {
        '{"transaction_id": 1, "tx_datetime": "2018-04-02T': "malformed_json",
        "[1, 2, 3]": "not_an_object",
        json.dumps(
            {k: v for k, v in good.items() if k != "tx_amount"}
        ): "missing_fields: tx_amount",
        json.dumps({**event(10_001, at), "promo": "x"}): "unknown_fields: promo",
        json.dumps(event(10_002, at, tx_amount="12,5€")): "wrong_type: tx_amount",
        json.dumps(event(10_003, "yesterday")): "wrong_type: tx_datetime",
        json.dumps(event(10_004, at, customer_id=True)): "wrong_type: customer_id",
        json.dumps(event(10_005, at, tx_amount=None)): "not_be_null(tx_amount)",
        json.dumps(event(10_006, at, customer_id=None)): "not_be_null(customer_id)",
        json.dumps(event(10_007, at, tx_amount=-3.5)): "be_between(tx_amount)",
        nan: "not_be_null(tx_amount)",
        nan.replace("NaN", "Infinity").replace("10008", "10009"): "be_between(tx_amount)",
        json.dumps(event(10_010, at, tx_fraud=2)): "be_in_set(tx_fraud)",
        json.dumps(event(10_011, "2018-04-01T23:59:59")): "be_between(tx_time_seconds)",
        json.dumps(event(10_012, "2018-04-03T00:00:00")): "be_between(tx_time_seconds)",
    }


def test_every_kind_of_bad_record_is_quarantined_with_its_reason():
    good = good_day(DAY, 200)
    bad = bad_lines()
    duplicates = as_lines(good[:3])
    lines = as_lines(good) + list(bad) + duplicates
    result = ingest_day(DAY, [("landing/a.jsonl.gz", _gz(lines))])

    assert result.landed == len(lines)
    assert result.landed == len(result.valid) + result.quarantined + result.duplicates
    assert sorted(result.valid["transaction_id"]) == [r["transaction_id"] for r in good]
    assert result.duplicates == 3
    assert result.quarantined == len(bad)
    quarantined = result.quarantine[result.quarantine["reason"] != DUPLICATE_REASON]
    reasons = dict(zip(quarantined["raw_line"], quarantined["reason"], strict=True))
    for line, expected in bad.items():
        assert expected in reasons[line], (line, reasons[line])


def test_unreadable_file_is_quarantined_not_lost():
    result = ingest_day(DAY, [("landing/broken.jsonl.gz", b"not gzip at all")])
    assert result.landed == 1 and result.quarantined == 1
    assert result.quarantine["reason"].item().startswith("unreadable_file")


def test_bad_partition_fails_its_check_and_blocks_downstream(defs, home, instance):
    land_lines(home, DAY, as_lines(good_day(DAY, 200)) + list(bad_lines()))
    result = defs.resolve_job_def("feature_ingestion").execute_in_process(
        partition_key=DAY.isoformat(), instance=instance, raise_on_error=False
    )
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.asset_key.path == ["raw_transactions"]
    ]
    assert not evaluation.passed
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized == {AssetKey("raw_transactions")}
    assert not (home / "lake" / "transaction_features").exists()
    quarantine = pd.read_parquet(home / f"lake/quarantine/date={DAY}/data.parquet")
    valid = pd.read_parquet(home / f"lake/raw_transactions/date={DAY}/data.parquet")
    assert len(quarantine) == len(bad_lines()) and len(valid) == 200


def test_clean_partition_passes_and_flows_downstream(defs, home, instance):
    land_lines(home, DAY, as_lines(good_day(DAY, 200)))
    result = defs.resolve_job_def("feature_ingestion").execute_in_process(
        partition_key=DAY.isoformat(), instance=instance
    )
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert {e.asset_key.path[-1] for e in result.get_asset_materialization_events()} == {
        "raw_transactions",
        "transaction_features",
        "offline_feature_store",
    }


def _gz(lines: list[str]) -> bytes:
    import gzip

    return gzip.compress("\n".join(lines).encode())
