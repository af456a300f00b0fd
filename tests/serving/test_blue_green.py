"""Blue/green: a model is loaded into a standby slot, smoke-tested and switched in only when
it passes; a broken one is refused and the previous model keeps serving."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
import xgboost as xgb

from fraud_orchestration.features import FEATURE_NAMES
from fraud_orchestration.modeling.trainer import MODEL_FILE
from fraud_orchestration.resources.model_registry import CARD_FILE, LocalRegistryStore
from fraud_orchestration.serving.app import ServingConfig, _admin_refusal
from fraud_orchestration.serving.server import admin_load, admin_status
from tests.serving.conftest import train_tiny_model

TRANSACTION = {
    "transaction_id": 30_000_001,
    "tx_datetime": "2018-05-10T12:00:00",
    "customer_id": 5,
    "terminal_id": 7,
    "tx_amount": 60.0,
}


def score(url: str, transaction_id: int = 30_000_001) -> dict:
    response = httpx.post(
        f"{url}/invocations", json={**TRANSACTION, "transaction_id": transaction_id}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def models(lake, tmp_path_factory) -> dict[str, Path]:
    """A second good model, and broken ones."""
    root = tmp_path_factory.mktemp("models")
    made = {"v1": lake.model_dir}
    made["v2"] = train_tiny_model(lake.features, root / "v2", FEATURE_NAMES[::-1])  # other order
    made["subset"] = train_tiny_model(lake.features, root / "subset", FEATURE_NAMES[:10])
    extra = lake.features.assign(merchant_risk=np.random.default_rng(0).random(len(lake.features)))
    made["unknown_feature"] = train_tiny_model(
        extra, root / "unknown_feature", [*FEATURE_NAMES, "merchant_risk"]
    )

    corrupt = shutil.copytree(lake.model_dir, root / "corrupt")
    data = (corrupt / MODEL_FILE).read_bytes()
    (corrupt / MODEL_FILE).write_bytes(data[: len(data) // 2])
    made["corrupt"] = corrupt

    garbage = shutil.copytree(lake.model_dir, root / "garbage")
    (garbage / MODEL_FILE).write_bytes(b"\x00\x01 not a model at all")
    made["garbage"] = garbage

    fewer = shutil.copytree(lake.model_dir, root / "card_lists_fewer_features")
    card = json.loads((fewer / CARD_FILE).read_text())
    card["features"] = card["features"][:-1]
    (fewer / CARD_FILE).write_text(json.dumps(card))
    made["card_lists_fewer_features"] = fewer

    pickled = shutil.copytree(lake.model_dir, root / "pickled")
    (pickled / "model.pkl").write_bytes(b"cos\nsystem\n(S'echo never run'\ntR.")
    card = json.loads((pickled / CARD_FILE).read_text())
    card["model_file"] = "model.pkl"
    (pickled / CARD_FILE).write_text(json.dumps(card))
    made["pickled"] = pickled

    no_card = shutil.copytree(lake.model_dir, root / "no_card")
    (no_card / CARD_FILE).unlink()
    made["no_card"] = no_card

    dart = shutil.copytree(lake.model_dir, root / "dart")
    sample = lake.features.iloc[:5000]
    booster = xgb.train(
        {"booster": "dart", "objective": "binary:logistic", "max_depth": 2},
        xgb.DMatrix(sample[FEATURE_NAMES], label=sample["tx_fraud"], feature_names=FEATURE_NAMES),
        num_boost_round=3,
    )
    booster.save_model(str(dart / MODEL_FILE))
    card = json.loads((dart / CARD_FILE).read_text())
    card["best_iteration"] = 2
    (dart / CARD_FILE).write_text(json.dumps(card))
    made["dart"] = dart

    bad_threshold = shutil.copytree(lake.model_dir, root / "bad_threshold")
    card = json.loads((bad_threshold / CARD_FILE).read_text())
    card["decision_threshold"] = 7.5
    (bad_threshold / CARD_FILE).write_text(json.dumps(card))
    made["bad_threshold"] = bad_threshold
    return made


def test_a_good_model_is_switched_in(start_server, models) -> None:
    server = start_server()
    before = score(server.url)
    assert before["model_version"] == "v1"
    outcome = admin_load(server.url, str(models["v2"]), "v2")
    assert outcome["loaded"] is True, outcome
    assert outcome["previous_version"] == "v1"
    assert outcome["smoke"]["single_p99_ms"] > 0
    after = score(server.url, 30_000_002)
    assert after["model_version"] == "v2"
    assert after["score"] != before["score"]
    status = admin_status(server.url)
    assert status["active"]["version"] == "v2" and status["previous_version"] == "v1"

    rolled = httpx.post(f"{server.url}/admin/rollback").json()
    assert rolled == {"version": "v1", "previous_version": "v2"}
    assert score(server.url, 30_000_003)["model_version"] == "v1"


BROKEN = {
    "corrupt": "cannot load",
    "garbage": "cannot load",
    "card_lists_fewer_features": f"differ from the card's {len(FEATURE_NAMES) - 1}",
    "unknown_feature": "does not compute",
    "pickled": "never a pickle",
    "no_card": "model card",
    "bad_threshold": "decision_threshold",
    "dart": "only gbtree",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_model_is_refused_and_the_previous_keeps_serving(
    start_server, models, name
) -> None:
    server = start_server()
    expected = score(server.url)
    response = httpx.post(
        f"{server.url}/admin/load",
        json={"model_dir": str(models[name]), "version": name},
        timeout=60,
    )
    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["loaded"] is False and outcome["active_version"] == "v1"
    assert BROKEN[name] in outcome["error"], outcome["error"]
    again = score(server.url)  # same transaction: the same model gives the same answer
    assert again["model_version"] == "v1" and again["score"] == expected["score"]
    status = admin_status(server.url)
    assert status["last_load"]["loaded"] is False and status["last_load"]["version"] == name


def test_feature_policy(start_server, models) -> None:
    subset = start_server()
    outcome = admin_load(subset.url, str(models["subset"]), "subset")
    assert outcome["loaded"] is True
    answer = score(subset.url)
    assert answer["model_version"] == "subset"
    assert {r["feature"] for r in answer["reasons"]} <= set(FEATURE_NAMES[:10])

    exact = start_server(feature_policy="exact")
    outcome = admin_load(exact.url, str(models["subset"]), "subset")
    assert outcome["loaded"] is False and "feature_policy is exact" in outcome["error"]
    assert admin_load(exact.url, str(models["v2"]), "v2")["loaded"] is True


def test_a_model_that_fails_the_latency_check_is_refused(start_server, models) -> None:
    server = start_server(smoke_max_latency_ms=1e-6)
    assert server.service.active is None  # the start-up model failed the same check
    outcome = admin_load(server.url, str(models["v2"]), "v2")
    assert outcome["loaded"] is False and "over the 1e-06 ms allowed" in outcome["error"]
    assert score(server.url)["fallback_reason"] == "no_model"


def test_start_with_a_broken_model_serves_the_rules(start_server, models) -> None:
    server = start_server(model_dir=str(models["corrupt"]))
    assert score(server.url)["fallback_reason"] == "no_model"
    status = admin_status(server.url)
    assert status["active"] is None and "cannot load" in status["last_load"]["error"]


def test_registry_champion_and_a_tampered_version(start_server, models, tmp_path) -> None:
    registry = LocalRegistryStore(tmp_path / "registry")
    first = registry.register(models["v1"], metrics={})
    registry.approve(first.version, "test")
    server = start_server(model_dir=None, registry_root=str(tmp_path / "registry"))
    assert score(server.url)["model_version"] == str(first.version)

    second = registry.register(models["v2"], metrics={})
    registry.approve(second.version, "test")
    with open(registry.versions_dir / str(second.version) / MODEL_FILE, "ab") as handle:
        handle.write(b" ")
    outcome = admin_load(server.url, champion=True)
    assert outcome["loaded"] is False and "sha256" in outcome["error"]
    assert score(server.url)["model_version"] == str(first.version)

    third = registry.register(models["v2"], metrics={})
    outcome = admin_load(server.url, registry_version=third.version)
    assert outcome["loaded"] is False and "PendingManualApproval" in outcome["error"]
    registry.approve(third.version, "test")
    assert admin_load(server.url, registry_version=third.version)["loaded"] is True
    assert score(server.url)["model_version"] == str(third.version)


def test_traffic_during_switches_never_fails(start_server, models) -> None:
    server = start_server()
    failures: list[str] = []
    versions: set[str] = set()
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            n = 0
            while not stop.is_set():
                n += 1
                response = client.post(
                    "/invocations", json={**TRANSACTION, "transaction_id": 40_000_000 + n}
                )
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    versions.add(str(response.json()["model_version"]))

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for name in ("v2", "corrupt", "v1", "unknown_feature", "v2"):
            admin_load(server.url, str(models[name]), name)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert versions <= {"v1", "v2", "None"} and "v2" in versions
    assert admin_status(server.url)["active"]["version"] == "v2"


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({}, 400),
        ({"model_dir": 3}, 400),
        ({"model_dir": "/x", "champion": True}, 400),
        ({"registry_version": "1"}, 400),
        ({"champion": False}, 400),
        ({"model_dir": "/nowhere"}, 422),
        ({"champion": True}, 422),  # no registry configured
    ],
)
def test_admin_load_validates_its_input(start_server, payload, status) -> None:
    server = start_server()
    response = httpx.post(f"{server.url}/admin/load", json=payload, timeout=30)
    assert response.status_code == status, response.text
    assert score(server.url)["model_version"] == "v1"


def test_admin_answers_loopback_clients_only() -> None:
    def scope(client: tuple[str, int] | None) -> dict:
        return {"type": "http", "client": client, "headers": []}

    config = ServingConfig()
    assert _admin_refusal(scope(("127.0.0.1", 5000)), config) is None
    assert _admin_refusal(scope(("::1", 5000)), config) is None
    assert _admin_refusal(scope(("10.1.2.3", 5000)), config).status == 403
    assert _admin_refusal(scope(None), config).status == 403  # an unknown peer
    assert _admin_refusal(scope(("127.0.0.1", 5000)), ServingConfig(admin=False)).status == 404
