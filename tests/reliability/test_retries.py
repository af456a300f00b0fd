"""Retry policies: a transient I/O error is retried with exponential backoff and the run
succeeds with nothing lost or duplicated; a permanent failure fails at once with a clear
message. Dagster's in-process executor (``materialize``) honours op retry policies
(verified here: a STEP_UP_FOR_RETRY event, then success). Producer-side AWS throttling is
retried by the AWS resources (tests/aws)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from fraud_orchestration.assets.deployment import fraud_endpoint
from fraud_orchestration.assets.ingestion import raw_transactions
from fraud_orchestration.resources.endpoint import LocalEndpoint
from fraud_orchestration.resources.lake import LocalLake
from fraud_orchestration.resources.model_registry import LocalModelRegistry
from fraud_orchestration.retries import EXTERNAL_IO
from tests.conftest import as_lines, free_port, good_day, land_lines

pytestmark = pytest.mark.reliability

DAY = date(2018, 4, 2)
EXTERNAL = {"lake", "feature_store", "model_registry", "endpoint", "trainer", "feature_engine"}


class FlakyLake(LocalLake):
    """A local lake whose first ``failures`` landing reads raise OSError (the count lives in
    a file: it must survive the retry)."""

    counter: str

    def read_landing(self, key: str) -> bytes:
        path = Path(self.counter)
        left = int(path.read_text())
        if left > 0:
            path.write_text(str(left - 1))
            raise OSError(f"injected: connection reset while reading {key}")
        return super().read_landing(key)


def events(result) -> list[str]:
    return [event.event_type_value for event in result.all_events]


def test_every_asset_touching_an_external_system_retries_with_backoff() -> None:
    from fraud_orchestration.definitions import defs

    for asset in defs.assets:
        if isinstance(asset, dg.AssetsDefinition) and asset.required_resource_keys & EXTERNAL:
            policy = asset.op.retry_policy
            assert policy is not None, asset.key
            assert policy.backoff == dg.Backoff.EXPONENTIAL and policy.max_retries >= 1


def test_a_transient_io_error_is_retried_and_the_run_succeeds(home, instance) -> None:
    land_lines(home, DAY, as_lines(good_day(DAY, 200)))
    counter = home / "failures_left"
    counter.write_text("1")
    result = dg.materialize(
        [raw_transactions],
        resources={"lake": FlakyLake(root=str(home), counter=str(counter))},
        instance=instance,
        partition_key=DAY.isoformat(),
    )
    assert result.success
    assert events(result).count("STEP_UP_FOR_RETRY") == 1 and counter.read_text() == "0"
    (materialization,) = result.asset_materializations_for_node("raw_transactions")
    assert materialization.metadata["valid"].value == 200  # nothing lost, nothing doubled
    assert raw_transactions.op.retry_policy == EXTERNAL_IO


def test_a_missing_day_fails_at_once_with_its_reason(home, instance) -> None:
    result = dg.materialize(
        [raw_transactions],
        resources={"lake": LocalLake(root=str(home))},
        instance=instance,
        partition_key=DAY.isoformat(),
        raise_on_error=False,
    )
    assert not result.success and "STEP_UP_FOR_RETRY" not in events(result)
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "No landed files for 2018-04-02" in str(failure.step_failure_data.error)


def test_a_tampered_model_is_refused_at_once(tmp_path, instance, lake) -> None:
    """The registry refuses a model whose bytes no longer match its checksum; the deployment
    fails without a retry and without touching the endpoint (no service is started)."""
    registry = LocalModelRegistry(root=str(tmp_path / "registry"))
    version = registry.register(lake.model_dir, metrics={}).version
    registry.approve(version, "test")
    model = registry.store.versions_dir / str(version) / "model.json"
    model.write_text(json.dumps({"tampered": True}))
    endpoint = LocalEndpoint(home=str(tmp_path / "home"), port=free_port())
    result = dg.materialize(
        [fraud_endpoint],
        resources={"model_registry": registry, "endpoint": endpoint},
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success and "STEP_UP_FOR_RETRY" not in events(result)
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "refusing to load a model whose bytes changed" in str(failure.step_failure_data.error)
    assert not (tmp_path / "home" / "endpoint").exists()
