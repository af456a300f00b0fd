"""Dynamic batching: which waiting requests a scoring thread scores together, and that
concurrent clients get the same answers as one-by-one requests when their cards and
terminals do not overlap."""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor

import httpx

from fraud_orchestration.serving.app import _Job, take_batch
from fraud_orchestration.serving.schema import Transaction
from tests.serving.conftest import SCORED_DAY, as_request


def job(*ids: int, record: bool = True) -> _Job:
    transactions = [
        Transaction(i, "2018-06-26T08:00:00", 1_530_000_000 + i, i % 7, i % 5, 10.0 + i)
        for i in ids
    ]
    return _Job(transactions, deadline=0.0, record=record, reply=None)


def test_waiting_recorded_requests_are_taken_together_up_to_the_row_limit() -> None:
    a, b, c, d = job(1), job(2, 3), job(4, 5, 6), job(7)
    queue = deque([a, b, c, d])
    assert take_batch(queue, max_rows=4) == [a, b, d]  # c would make 6 rows
    assert list(queue) == [c]
    assert take_batch(queue, max_rows=4) == [c] and not queue


def test_probes_run_alone_and_repeated_transactions_wait_for_the_next_batch() -> None:
    first, probe, again, other = job(1), job(9, record=False), job(1), job(2)
    queue = deque([first, probe, again, other])
    assert take_batch(queue, max_rows=64) == [first, other]
    assert list(queue) == [probe, again]  # left behind in their order
    assert take_batch(queue, max_rows=64) == [probe]  # a probe never joins a batch
    assert take_batch(queue, max_rows=64) == [again]


def test_concurrent_clients_get_the_answers_of_sequential_requests(start_server, lake) -> None:
    """One transaction per card and per terminal, sent by 16 concurrent clients, so batches
    form but no transaction's windows can reach another request's (nor can the recent
    events they leave): the answers must be those of the same transactions sent one by one
    to a fresh service."""
    day = lake.day(SCORED_DAY)
    picked = day.drop_duplicates("customer_id").drop_duplicates("terminal_id").head(200)
    bodies = [as_request(row) for row in picked.to_dict("records")]

    def send(url: str, body: dict) -> dict:
        response = httpx.post(f"{url}/invocations", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    server = start_server(budget_ms=5000)
    sequential = [send(server.url, body) for body in bodies]
    concurrent_server = start_server(budget_ms=5000)
    with ThreadPoolExecutor(16) as pool:
        concurrent = list(pool.map(lambda body: send(concurrent_server.url, body), bodies))
    assert concurrent == sequential
    assert not any(answer["fallback"] for answer in concurrent)
    counters = httpx.get(f"{concurrent_server.url}/admin/status").json()["counters"]
    assert counters.get("batched_requests", 0) > 0  # batches did form
