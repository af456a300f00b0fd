from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from fraud_orchestration.modeling.trainer import TrainedModel, TrainingParams, train_model
from fraud_orchestration.resources.model_registry import (
    ApprovalStatus,
    ChecksumMismatchError,
    LocalModelRegistry,
    LocalRegistryStore,
    ModelRegistry,
    RegistryError,
)

from .conftest import FEATURES


def model_dir(path: Path, tag: str = "a") -> Path:
    """A stand-in model folder: the registry never parses the model itself."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.json").write_text(json.dumps({"learner": tag}))
    (path / "model_card.json").write_text(json.dumps({"features": ["f0"], "tag": tag}))
    return path


@pytest.fixture
def store(tmp_path) -> LocalRegistryStore:
    return LocalRegistryStore(tmp_path / "registry")


@pytest.fixture
def source(tmp_path) -> Path:
    return model_dir(tmp_path / "model")


def test_register_copies_files_and_starts_pending(store, source) -> None:
    version = store.register(source, metrics={"avg_precision": 0.6})
    assert version.version == 1
    assert version.status == ApprovalStatus.PENDING == "PendingManualApproval"
    assert version.reason is None
    assert version.metrics == {"avg_precision": 0.6}
    assert version.card == {"features": ["f0"], "tag": "a"}
    folder = store.versions_dir / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model_card.json"]
    for name, digest in version.files.items():
        assert digest == hashlib.sha256((source / name).read_bytes()).hexdigest()
    assert store.get(1) == version
    assert store.list_versions() == [version]


def test_register_takes_a_file_list_and_an_explicit_card(store, source) -> None:
    version = store.register([source / "model.json"], metrics={}, card={"note": "explicit"})
    assert set(version.files) == {"model.json"}
    assert version.card == {"note": "explicit"}


def test_register_refuses_pickles_and_folders_without_a_model(store, source, tmp_path) -> None:
    (source / "model.pkl").write_bytes(b"\x80\x04.")
    with pytest.raises(RegistryError, match="pickled"):
        store.register(source, metrics={})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RegistryError, match="needs a model.json"):
        store.register(empty, metrics={})
    assert store.list_versions() == []


def test_approve_and_reject_need_a_reason(store, source) -> None:
    store.register(source, metrics={})
    store.register(source, metrics={})
    approved = store.approve(1, "beats the champion on AP")
    rejected = store.reject(2, "CP@100 regressed")
    assert (approved.status, approved.reason) == ("Approved", "beats the champion on AP")
    assert (rejected.status, rejected.reason) == ("Rejected", "CP@100 regressed")
    assert store.get(1) == approved and store.get(2) == rejected
    with pytest.raises(ValueError, match="reason"):
        store.approve(2, " ")
    with pytest.raises(RegistryError, match="no version 9"):
        store.approve(9, "nope")


def test_champion_is_the_newest_approved_and_rejecting_it_rolls_back(store, source) -> None:
    assert store.champion() is None and store.previous_champion() is None
    for _ in range(4):
        store.register(source, metrics={})
    store.approve(1, "first")
    assert store.champion().version == 1 and store.previous_champion() is None
    store.approve(3, "better")
    store.reject(2, "worse")
    assert store.champion().version == 3
    assert store.previous_champion().version == 1
    store.reject(3, "bad in production: roll back")
    assert store.champion().version == 1
    assert store.get(4).status == ApprovalStatus.PENDING


def test_load_model_dir_verifies_checksums(store, source) -> None:
    store.register(source, metrics={})
    folder = store.load_model_dir(1)
    assert (folder / "model.json").read_text() == (source / "model.json").read_text()
    (folder / "model.json").write_text(json.dumps({"learner": "tampered"}))
    with pytest.raises(ChecksumMismatchError, match="model.json has sha256"):
        store.load_model_dir(1)
    (folder / "model.json").unlink()
    with pytest.raises(ChecksumMismatchError, match="missing"):
        store.load_model_dir(1)


def test_crash_leftovers_are_invisible(store, source) -> None:
    store.register(source, metrics={})
    (store.group_dir / ".index.json.deadbeef.tmp").write_text('{"versions": [')
    half = store.versions_dir / ".tmp-0123"
    half.mkdir()
    (half / "model.json").write_text("{")
    assert [v.version for v in store.list_versions()] == [1]
    assert store.register(source, metrics={}).version == 2


CRASHING_REGISTER = """
import os, shutil, sys
from fraud_orchestration.resources import model_registry

point, root, source = sys.argv[1:]
if point == "copy":  # die after the first file is copied into the staging folder
    real_copy = shutil.copyfile
    def copy_then_die(src, dst):
        real_copy(src, dst)
        os._exit(17)
    model_registry.shutil.copyfile = copy_then_die
else:  # die when the index is about to be replaced, after the version folder is in place
    real_replace = os.replace
    def die_on_index(src, dst):
        if str(dst).endswith("index.json"):
            os._exit(17)
        real_replace(src, dst)
    os.replace = die_on_index
model_registry.LocalRegistryStore(root).register(source, metrics={})
"""


@pytest.mark.parametrize(("point", "next_version"), [("copy", 2), ("index", 3)])
def test_a_crash_mid_register_leaves_no_visible_version(store, source, point, next_version) -> None:
    store.register(source, metrics={})
    before = store.index_path.read_bytes()
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_REGISTER, point, str(store.group_dir.parent), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 17, result.stderr
    assert store.index_path.read_bytes() == before
    assert [v.version for v in store.list_versions()] == [1]
    # The next registration works and skips the number of a folder the crash left on disk.
    assert store.register(source, metrics={}).version == next_version
    assert store.load_model_dir(next_version)


CONCURRENT_REGISTER = """
import sys, time
from fraud_orchestration.resources.model_registry import LocalRegistryStore

root, source, count, start = sys.argv[1:]
store = LocalRegistryStore(root)
time.sleep(max(0.0, float(start) - time.time()))  # both writers begin together
print(" ".join(str(store.register(source, metrics={}).version) for _ in range(int(count))))
"""


def test_concurrent_registrations_get_distinct_versions(store, source) -> None:
    count = 8
    start = time.time() + 5  # past both interpreters' start-up
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_REGISTER, str(store.group_dir.parent), str(source)]
            + [str(count), str(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    numbers = [int(n) for output in outputs for n in output.split()]
    assert sorted(numbers) == list(range(1, 2 * count + 1))
    assert [v.version for v in store.list_versions()] == list(range(1, 2 * count + 1))


def test_a_registered_trained_model_loads_back_identically(splits, store, tmp_path) -> None:
    train, valid, test = splits
    model = train_model(train, valid, FEATURES, TrainingParams(n_estimators=30))
    saved = model.save(tmp_path / "out", metrics={"valid": {"avg_precision": 0.5}})
    version = store.register(saved, metrics={"avg_precision": 0.5})
    assert version.card["best_iteration"] == model.best_iteration
    store.approve(version.version, "first model")
    loaded = TrainedModel.load(store.load_model_dir(store.champion().version))
    assert np.array_equal(loaded.predict(test), model.predict(test))


def test_the_dagster_resource_delegates_to_the_store(tmp_path, source) -> None:
    with pytest.raises(TypeError):
        ModelRegistry()

    @dg.asset
    def registered(registry: ModelRegistry) -> int:
        version = registry.register(source, metrics={"auc_roc": 0.9})
        registry.approve(version.version, "smoke test")
        return version.version

    resource = LocalModelRegistry(root=str(tmp_path / "registry"), group="g")
    result = dg.materialize([registered], resources={"registry": resource})
    assert result.success and result.output_for_node("registered") == 1
    assert resource.champion().version == 1
    assert (tmp_path / "registry" / "g" / "versions" / "1" / "model.json").is_file()
    assert LocalRegistryStore(tmp_path / "registry", "g").list_versions() == (
        resource.list_versions()
    )
