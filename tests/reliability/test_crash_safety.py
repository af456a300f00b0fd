"""SIGKILL a real process in the middle of a write: the previous good state stays readable,
no partial file is visible to readers, the registry index parses and its checksums verify,
and the next run completes the work.

The child (``crash_child``) pauses at an exact step of the real write path and says so with
a flag file; only then is it killed, so every run kills at the same point. The os._exit
variants of two registry points are in tests/modeling/test_model_registry.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fraud_orchestration.resources.endpoint import LocalEndpoint
from fraud_orchestration.resources.feature_store import LocalFeatureStore
from fraud_orchestration.resources.lake import LocalLake
from fraud_orchestration.resources.model_registry import LocalRegistryStore
from tests.conftest import free_port
from tests.reliability.support import (
    DAY,
    crash_at,
    hidden_leftovers,
    kill9,
    python,
    table,
    wait_for_flag,
    wait_until_serving,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]


@pytest.mark.parametrize(
    "scenario", ["lake-partial", "lake-rename", "offline-partial", "offline-rename"]
)
def test_a_killed_partition_write_leaves_the_previous_partition(tmp_path, scenario) -> None:
    lake = LocalLake(root=str(tmp_path))
    store = LocalFeatureStore(root=str(tmp_path / "feature_store"))
    previous = table(1).to_pandas().assign(tx_datetime=lambda f: f["transaction_id"])
    if scenario.startswith("lake"):
        lake.write_partition("raw_transactions", DAY, table(1))
        read = lambda: lake.read_partitions("raw_transactions", [DAY])  # noqa: E731
    else:
        store.write_offline(DAY, previous)
        read = lambda: store.read_offline([DAY])  # noqa: E731

    crash_at(scenario, tmp_path, tmp_path / "paused")

    before = read()
    assert len(before) == 20_000 and set(before["version"]) == {1}
    leftovers = hidden_leftovers(tmp_path)
    assert leftovers, "the child was killed with its temporary file on disk"
    assert all(p.name.endswith(".tmp") for p in leftovers)
    data_files = [p for p in tmp_path.rglob("*.parquet") if not p.name.startswith(".")]
    assert len(data_files) == 1 and pq.read_table(data_files[0]).num_rows == 20_000
    if scenario.startswith("offline"):
        assert store.offline_days() == [DAY]

    # The next run completes the work.
    if scenario.startswith("lake"):
        lake.write_partition("raw_transactions", DAY, table(2))
    else:
        store.write_offline(DAY, table(2).to_pandas().assign(tx_datetime=lambda f: f.index))
    after = read()
    assert len(after) == 20_000 and set(after["version"]) == {2}


@pytest.mark.parametrize("reader", ["lake", "offline"])
def test_readers_see_whole_versions_while_a_partition_is_rewritten(tmp_path, reader) -> None:
    """The project's readers open a replaced file once per read, so each read is one
    complete version (``pq.read_table(path)`` opens it twice and fails here)."""
    lake = LocalLake(root=str(tmp_path))
    store = LocalFeatureStore(root=str(tmp_path / "feature_store"))
    versions = {version: table(version, rows=5_000 * version) for version in (1, 2)}

    def write(version: int) -> None:
        if reader == "lake":
            lake.write_partition("raw_transactions", DAY, versions[version])
        else:
            frame = versions[version].to_pandas()
            store.write_offline(DAY, frame.assign(tx_datetime=frame["transaction_id"]))

    def read():
        if reader == "lake":
            return lake.read_partitions("raw_transactions", [DAY])
        return store.read_offline([DAY])

    write(1)
    seen: set[tuple[int, frozenset]] = set()
    errors: list[BaseException] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            try:
                frame = read()
                seen.add((len(frame), frozenset(frame["version"])))
            except Exception as error:  # any failed read is a finding
                errors.append(error)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for round_ in range(200):
            write(2 - round_ % 2)
    finally:
        done.set()
        poller.join()
    assert not errors, errors[:3]
    assert seen <= {(5_000, frozenset({1})), (10_000, frozenset({2}))}


@pytest.fixture
def model_source(tmp_path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"trees": list(range(200_000))}))
    (folder / "model_card.json").write_text(json.dumps({"features": ["a"], "threshold": 0.5}))
    return folder


@pytest.mark.parametrize(
    ("scenario", "next_version"),
    [("registry-copy", 3), ("registry-folder", 4), ("registry-index", 4), ("registry-approve", 3)],
)
def test_a_killed_registry_write_leaves_a_valid_registry(
    tmp_path, model_source, scenario, next_version
) -> None:
    store = LocalRegistryStore(tmp_path / "registry")
    store.approve(store.register(model_source, metrics={}).version, "first")
    store.register(model_source, metrics={})
    before = store.index_path.read_bytes()

    # registry-folder and registry-index die holding the registry's lock.
    crash_at(scenario, tmp_path, tmp_path / "paused", str(model_source))

    assert store.index_path.read_bytes() == before
    index = json.loads(before)
    assert [v["version"] for v in index["versions"]] == [1, 2]
    for version in store.list_versions():
        assert store.load_model_dir(version.version)  # every checksum verifies
    assert store.champion().version == 1
    assert all(p.name.startswith((".tmp-", ".index.json.")) for p in hidden_leftovers(tmp_path))

    # The next run completes the work (the lock died with the process).
    if scenario == "registry-approve":
        store.approve(2, "approved on the second run")
        assert store.champion().version == 2
    assert store.register(model_source, metrics={}).version == next_version
    assert store.load_model_dir(next_version)


def test_a_killed_deployment_leaves_the_endpoint_recoverable(tmp_path, lake) -> None:
    """Two kills: the deploying process after the service switched (before its state file
    is renamed), then the service itself in the middle of loading a model."""
    home, port = tmp_path / "home", free_port()
    flag = tmp_path / "paused"
    service = python(
        "-m",
        "tests.reliability.faulty_server",
        *("--home", str(home), "--online-store", str(lake.store_path)),
        *("--port", str(port), "--log-level", "warning"),
        env={"RELIABILITY_PAUSE_VERSION": "3", "RELIABILITY_PAUSE_FLAG": str(flag)},
        log=tmp_path / "faulty_server.log",
    )
    endpoint = LocalEndpoint(home=str(home), port=port, startup_timeout_seconds=180)
    state = home / "endpoint" / "last_deployment.json"
    try:
        wait_until_serving(endpoint.url, service)
        endpoint.start()  # finds the faulty service answering on the port
        assert endpoint.deploy(1, lake.model_dir).changed

        crash_at(
            "endpoint-record", home, tmp_path / "deployer-paused", str(lake.model_dir), str(port)
        )
        assert json.loads(state.read_text())["requested_version"] == 1  # the previous record, whole
        assert endpoint.deployed_version() == 2  # the service had switched before the kill
        assert not endpoint.deploy(2, lake.model_dir).changed  # the rerun has nothing to do

        errors: list[BaseException] = []

        def deploy() -> None:
            try:
                endpoint.deploy(3, lake.model_dir)
            except BaseException as error:  # noqa: BLE001 - the connection dies with the service
                errors.append(error)

        deployer = threading.Thread(target=deploy)
        deployer.start()
        wait_for_flag(flag, service)
        kill9(service)
        deployer.join(timeout=60)
        assert errors, "the deployment cannot succeed when its service is killed mid-load"
        # The last whole record (a no-op redeploy of v2 writes none): parseable, not torn.
        assert json.loads(state.read_text())["requested_version"] == 1
        # The first kill's temporary state file is hidden; readers only open the real name.
        assert [p.name.startswith(".last_deployment.json.") for p in hidden_leftovers(home)] == [
            True
        ]

        # The next run (Dagster's retry) starts a fresh service and completes the deployment.
        assert endpoint.deploy(3, lake.model_dir).changed
        assert endpoint.deployed_version() == 3
    finally:
        endpoint.stop()
        if service.poll() is None:
            kill9(service)
