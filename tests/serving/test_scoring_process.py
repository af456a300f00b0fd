"""The service split in two processes (``serving.scoring_process``): the same answers and
features as in one process, admin commands through the pipe, the time budget kept by the
front, the rules answering when the scoring process dies, and no orphan when the server
stops."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from fraud_orchestration.serving.app import ServingConfig, create_app
from fraud_orchestration.serving.scoring_process import (
    _Answers,
    _frame,
    _Outbox,
    _take_messages,
)
from fraud_orchestration.serving.server import free_port
from tests.serving.conftest import SCORED_DAY, as_request


def scoring_pid(server) -> int:
    return server.app.backend.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) still answers signal 0: read its state.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_answers_and_features_equal_those_of_one_process(start_server, lake) -> None:
    """Transactions of day D+1 in time order, one by one, to a fresh server of each kind:
    the card and terminal windows see the same recent events, so every answer and every
    feature must be the same."""
    rows = lake.day(SCORED_DAY).head(150)
    answers = {}
    for split in (False, True):
        server = start_server(scoring_process=split)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answers[split] = [
                client.post(
                    "/invocations", json=as_request(row), params={"features": "true"}
                ).json()
                for _, row in rows.iterrows()
            ]
        server.stop()
    assert all(not answer["fallback"] for answer in answers[True])
    assert answers[True] == answers[False]


def test_a_large_answer_arrives_whole(start_server, lake) -> None:
    """A list of 600 transactions with their features: an answer larger than the pipe's
    buffer, which the front receives in pieces."""
    transactions = [as_request(row) for _, row in lake.day(SCORED_DAY).head(600).iterrows()]
    answers = {}
    for split in (False, True):
        server = start_server(scoring_process=split)
        response = httpx.post(
            f"{server.url}/invocations",
            json=transactions,
            params={"features": "true"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert len(response.content) > 1 << 19
        answers[split] = response.json()["predictions"]
        server.stop()
    ids = [transaction["transaction_id"] for transaction in transactions]
    assert [answer["transaction_id"] for answer in answers[True]] == ids
    assert not any(answer["fallback"] for answer in answers[True])
    assert answers[True] == answers[False]


def test_messages_cut_anywhere_are_joined_in_order() -> None:
    """The front's protocol gets the pipe's bytes in whatever pieces the socket gives: two
    messages fed one byte at a time, then both in one piece, settle the same answers."""

    class Front:
        def __init__(self) -> None:
            self.received: list = []

        def _received(self, message) -> None:
            self.received.append(message)

    messages = [
        ("answers", [[1, [{"score": 0.25}], None], [2, [{"score": 0.5}], [[1.0, None]]]]),
        ("result", 3, True, {"version": "v2"}),
    ]
    stream = b"".join(_frame(message) for message in messages)
    expected = [json.loads(json.dumps(message)) for message in messages]
    for pieces in ([stream[i : i + 1] for i in range(len(stream))], [stream]):
        front = Front()
        protocol = _Answers(front)
        for piece in pieces:
            protocol.data_received(piece)
        assert front.received == expected
        assert not protocol.buffer


def test_the_messages_of_one_loop_turn_go_in_one_write() -> None:
    """Requests the front reads in one turn of its event loop reach the scoring process in
    one write (one wake-up), in order; the next turn's in the next write."""

    class Pipe:
        def __init__(self) -> None:
            self.writes: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.writes.append(data)

        def is_closing(self) -> bool:
            return False

    pipe = Pipe()

    async def two_turns() -> None:
        outbox = _Outbox(pipe)
        for request_id in range(5):
            outbox.put(_frame(("score", request_id)))
        assert pipe.writes == []  # nothing written before the turn ends
        await asyncio.sleep(0)
        outbox.put(_frame(("score", 5)))
        await asyncio.sleep(0)

    asyncio.run(two_turns())
    assert [
        [message[1] for message in _take_messages(bytearray(write))] for write in pipe.writes
    ] == [
        [0, 1, 2, 3, 4],
        [5],
    ]


def test_admin_commands_reach_the_scoring_process(start_server, lake, tmp_path) -> None:
    server = start_server(scoring_process=True)
    with httpx.Client(base_url=server.url, timeout=120) as client:
        assert client.get("/ping").json()["model_version"] == "v1"
        loaded = client.post(
            "/admin/load", json={"model_dir": str(lake.model_dir), "version": "v2"}
        ).json()
        assert loaded["loaded"] and loaded["previous_version"] == "v1"
        assert client.get("/ping").json()["model_version"] == "v2"

        broken = tmp_path / "broken"
        broken.mkdir()
        refused = client.post("/admin/load", json={"model_dir": str(broken)})
        assert refused.status_code == 422 and refused.json()["active_version"] == "v2"

        assert client.post("/admin/rollback").json()["version"] == "v1"
        assert client.post("/admin/unload").json()["version"] is None
        answer = client.post("/invocations", json=as_request(lake.day(SCORED_DAY).iloc[0]))
        assert answer.json()["fallback_reason"] == "no_model"

        status = client.get("/admin/status").json()
        assert status["scoring_process"] == {
            "pid": scoring_pid(server),
            "alive": True,
            "gone": None,
        }
        assert status["counters"]["requests"] == 1  # counted by the front
        assert status["counters"]["fallback_no_model"] == 1  # counted by the scoring process
        refresh = client.post("/admin/refresh-store").json()
        assert refresh["changed"] is False


def test_a_spent_budget_is_answered_by_the_front_with_the_rules(start_server, lake) -> None:
    """The budget is spent before the scoring process could answer: the front's timer
    answers with the rules, and the scoring process skips the job (it is past its deadline)
    but still remembers the transaction."""
    server = start_server(scoring_process=True, budget_ms=0.001)
    transaction = as_request(lake.day(SCORED_DAY).iloc[0])
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answer = client.post("/invocations", json=transaction).json()
        assert answer["fallback"] and answer["fallback_reason"] == "time_budget"
        status = client.get("/admin/status").json()
    assert status["counters"]["fallback_time_budget"] == 1
    assert "model_answers" not in status["counters"]


def test_when_the_scoring_process_dies_the_rules_answer(start_server, lake) -> None:
    server = start_server(scoring_process=True)
    pid = scoring_pid(server)
    transactions = [as_request(row) for _, row in lake.day(SCORED_DAY).head(3).iterrows()]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert not client.post("/invocations", json=transactions[0]).json()["fallback"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        for transaction in transactions[1:]:
            response = client.post("/invocations", json=transaction)
            assert response.status_code == 200
            assert response.json()["fallback_reason"] == "scoring_unavailable"
        ping = client.get("/ping")
        assert ping.status_code == 200 and ping.json()["fallback_only"] is True
        status = client.get("/admin/status").json()
    assert status["scoring_process"]["alive"] is False
    assert "pipe closed" in status["scoring_process"]["gone"]


def test_the_scoring_process_stops_with_the_server(start_server) -> None:
    server = start_server(scoring_process=True)
    pid = scoring_pid(server)
    server.stop()
    assert not alive(pid)


@pytest.mark.parametrize("how", ["front_killed", "group_terminated"])
def test_the_scoring_process_ends_with_the_front(lake, tmp_path, how) -> None:
    """``fraud_orchestration.serving.server`` as a real process in a session of its own.
    Killed with SIGKILL (no shutdown runs), its scoring process reads the end of the pipe
    and exits. A SIGTERM to the whole process group (what ``LocalEndpoint.stop`` sends) is
    the front's to handle: it shuts down, stopping its scoring process through the pipe,
    and never reports it lost."""
    port = free_port()
    log_path = tmp_path / "server.log"
    log = log_path.open("wb")
    front = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fraud_orchestration.serving.server",
            "--port",
            str(port),
            "--online-store",
            str(lake.store_path),
            "--model-dir",
            str(lake.model_dir),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                status = httpx.get(f"{url}/admin/status", timeout=5).json()
                break
            except httpx.HTTPError:
                assert front.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        pid = status["scoring_process"]["pid"]
        assert alive(pid)
        if how == "front_killed":
            front.kill()
        else:
            os.killpg(front.pid, signal.SIGTERM)
        # uvicorn shuts down on SIGTERM, then exits by the same signal.
        assert front.wait(30) == -(signal.SIGKILL if how == "front_killed" else signal.SIGTERM)
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
        assert "scoring process is gone" not in log_path.read_text()
    finally:
        if front.poll() is None:
            front.kill()
        log.close()


def test_the_front_keeps_its_start_up_objects_out_of_full_collections(lake) -> None:
    """A full collection over everything the libraries allocated at import stopped the HTTP
    front for 200-260 ms at 50 clients: the front freezes its start-up objects when the server
    starts (the scoring process does once its service is ready, ``start_service``)."""
    config = ServingConfig(
        online_store_path=str(lake.store_path), model_dir=str(lake.model_dir), scoring_process=True
    )
    gc.unfreeze()
    app = create_app(config)
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    frozen: list[int] = []

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        frozen.append(gc.get_freeze_count())

    try:
        assert gc.get_freeze_count() == 0
        asyncio.run(app({"type": "lifespan"}, receive, send))
    finally:
        gc.unfreeze()
    assert frozen[0] > 10_000  # at startup.complete: the imported libraries' objects
