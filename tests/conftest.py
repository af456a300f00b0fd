"""Shared fixtures: every test gets its own temporary lake (``FRAUD_HOME``)."""

from __future__ import annotations

import gzip
import json
import socket
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance

from fraud_orchestration.definitions import build_definitions
from fraud_orchestration.schema import landing_hour_prefix
from fraud_orchestration.settings import load_settings

HANDBOOK_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fraud-handbook"


def handbook_dir_or_skip() -> Path:
    if not (HANDBOOK_DIR / "raw").is_dir():
        pytest.skip(f"the handbook data set is not at {HANDBOOK_DIR} (it is in CI)")
    return HANDBOOK_DIR


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "fraud_home"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def defs(home: Path):
    """The project's definitions over a temporary lake; the endpoint on a free port, stopped
    at the end of the test."""
    settings = load_settings({"FRAUD_HOME": str(home), "FRAUD_ENDPOINT_PORT": str(free_port())})
    definitions = build_definitions(settings)
    yield definitions
    definitions.resources["endpoint"].stop()


@pytest.fixture
def instance(tmp_path: Path):
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as ephemeral:
        yield ephemeral


def event(transaction_id: int, when: str, **overrides) -> dict:
    record = {
        "transaction_id": transaction_id,
        "tx_datetime": when,
        "customer_id": transaction_id % 7,
        "terminal_id": transaction_id % 11,
        "tx_amount": 10.0 + transaction_id,
        "tx_fraud": 0,
        "tx_fraud_scenario": 0,
    }
    record.update(overrides)
    return record


def land_lines(
    home: Path, day: date, lines: list[str], name: str = "part-0000", hour: int = 12
) -> Path:
    """Write ``lines`` as one Firehose-style gzipped JSON-lines file of ``day``."""
    folder = home / landing_hour_prefix(day.year, day.month, day.day, hour)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"fraud-events-1-{day:%Y-%m-%d}-{hour:02d}-00-00-{name}.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(lines).encode(), mtime=0))
    return path


def good_day(day: date, count: int, first_id: int = 0) -> list[dict]:
    return [
        event(
            first_id + i, f"{day.isoformat()}T{(i * 37) % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}"
        )
        for i in range(count)
    ]


def as_lines(records: list[dict]) -> list[str]:
    return [json.dumps(record) for record in records]
