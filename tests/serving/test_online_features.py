"""The pieces of online feature computation: merging without duplicates, the recent-events
buffer, the engines' agreement, and picking up a newly published online store."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import httpx
import numpy as np
import pytest

from fraud_orchestration.features import FEATURE_NAMES, feature_sql
from fraud_orchestration.partitions import day_bounds_seconds
from fraud_orchestration.serving.features import (
    ROW_COLUMNS,
    DuckDBEngine,
    FeatureComputer,
    OnlineStoreReader,
    RecentEvents,
    SQLiteEngine,
    StoreHistory,
    canary_rows,
    frame_from_rows,
    merge_frames,
    request_frame,
    verify_engine,
)
from fraud_orchestration.serving.schema import Transaction
from tests.serving.conftest import SCORED_DAY, STORE_DAY, as_request, publish_store


def transaction(transaction_id: int, seconds: int, customer: int = 1, terminal: int = 2):
    return Transaction(transaction_id, "2018-05-01T00:00:00", seconds, customer, terminal, 10.0)


def test_merge_keeps_one_row_per_transaction_with_the_right_precedence() -> None:
    cards = frame_from_rows([(1, 100, 1, 2, 5.0, 0), (2, 200, 1, 3, 6.0, 0)])
    terminals = frame_from_rows([(1, 100, 1, 2, 5.0, 1), (3, 300, 9, 2, 7.0, 1)])
    recent = frame_from_rows([(2, 200, 1, 3, 6.0, 0), (4, 400, 1, 2, 8.0, 0)])
    request = request_frame([transaction(4, 400), transaction(5, 500)])
    merged = merge_frames(recent, cards, terminals, request)
    rows = {
        int(row[0]): row
        for row in zip(*(merged[name].tolist() for name in ROW_COLUMNS), strict=True)
    }
    assert sorted(rows) == [1, 2, 3, 4, 5] and len(merged["transaction_id"]) == 5
    assert rows[1] == (1, 100, 1, 2, 5.0, 1)  # in both histories: the labelled row
    assert rows[2] == (2, 200, 1, 3, 6.0, 0)
    assert rows[4] == (4, 400, 1, 2, 10.0, 0)  # the request's own values win


def test_the_store_history_finds_every_row_of_the_asked_entities(lake) -> None:
    history = StoreHistory.load(lake.store_path)
    with sqlite3.connect(lake.store_path) as connection:
        customers = [
            r[0]
            for r in connection.execute(
                "SELECT DISTINCT customer_id FROM card_history ORDER BY random() LIMIT 20"
            )
        ]
        want = connection.execute(
            "SELECT transaction_id FROM card_history WHERE customer_id IN "
            f"({', '.join('?' * len(customers))})",
            customers,
        ).fetchall()
    connection.close()
    unknown = 10**9  # a card the store has never seen
    cards, terminals = history.of(
        np.array(sorted(customers) + [unknown], float), np.array([], float)
    )
    assert sorted(cards["transaction_id"].astype(int).tolist()) == sorted(r[0] for r in want)
    assert set(cards["customer_id"].tolist()) == set(customers)
    assert len(terminals["transaction_id"]) == 0


def test_recent_events_lookup_replace_and_forget() -> None:
    recent = RecentEvents(max_events=3)
    recent.add([transaction(1, 100, customer=1, terminal=7), transaction(2, 150, 2, 8)])
    assert {row[0] for row in recent.lookup([1], [])} == {1}
    assert {row[0] for row in recent.lookup([], [8])} == {2}
    recent.add([transaction(1, 120, customer=3, terminal=9)])  # same id, corrected
    assert recent.lookup([1], [7]) == []
    assert [row[:4] for row in recent.lookup([3], [])] == [(1, 120, 3, 9)]
    recent.add([transaction(3, 4_000_000_000, 4, 4)])  # far in the future: flushes nothing
    assert len(recent) == 3
    recent.add([transaction(4, 200, 5, 5)])  # max_events: the earliest added (2) goes
    assert sorted(row[0] for row in recent.lookup([1, 2, 3, 4, 5], [])) == [1, 3, 4]
    recent.add([transaction(1, 120, customer=3, terminal=9)])  # re-added: now the newest
    recent.add([transaction(5, 210, 6, 6)])
    assert sorted(row[0] for row in recent.lookup([3, 4, 5, 6], [])) == [1, 4, 5]
    assert recent.drop_before(205) == 2 and len(recent) == 1


def test_sqlite_reproduces_duckdb_on_the_canary() -> None:
    sql = feature_sql()
    assert verify_engine(SQLiteEngine(sql), DuckDBEngine(sql)) is None
    rows = canary_rows()
    assert len({row[0] for row in rows}) == len(rows)


def test_sqlite_is_refused_when_it_cannot_run_the_sql(tmp_path) -> None:
    duckdb_only = feature_sql().replace("  tx_amount,\n", "  tx_amount::DOUBLE AS tx_amount,\n", 1)
    assert duckdb_only != feature_sql()
    computer = FeatureComputer(
        OnlineStoreReader(None), RecentEvents(), engine="auto", sql=duckdb_only
    )
    assert computer.sqlite is None and "sqlite refused" in computer.engine_note
    assert computer.engine_for(1) is computer.duckdb
    rows = canary_rows()
    matrix = computer.compute_rows(rows, [rows[-1][0]])
    assert matrix.names == FEATURE_NAMES and matrix.values.shape == (1, len(FEATURE_NAMES))


def test_a_newly_published_store_is_picked_up(start_server, lake, tmp_path) -> None:
    """Serve from a store as of D-1, then publish the one as of D in its place (a rename,
    as the asset does): the service reopens it and drops the recent events it covers."""
    store_dir = tmp_path / "feature_store"
    older = day_bounds_seconds(STORE_DAY)[0]
    path = publish_store(lake.features, older, store_dir)
    server = start_server(engine="auto", store_check_seconds=3600)
    server.service.store.path = path  # no refresh before we ask (check_seconds is long)
    server.service.store.refresh(force=True)
    day_d = lake.day(STORE_DAY)
    row = lake.day(SCORED_DAY).iloc[0]
    first = httpx.post(f"{server.url}/invocations", json=as_request(day_d.iloc[0])).json()
    assert first["fallback"] is False
    assert len(server.service.recent) == 1
    generation = server.service.store.generation

    newer = publish_store(lake.features, lake.as_of_seconds, tmp_path / "staging")
    shutil.move(newer, path)  # replace the file as publish_online does (a rename)
    status = httpx.post(f"{server.url}/admin/refresh-store").json()
    assert status["changed"] is True and status["generation"] == generation + 1
    assert status["as_of_seconds"] == lake.as_of_seconds
    assert len(server.service.recent) == 0  # day D's event is in the new store

    answer = httpx.post(
        f"{server.url}/invocations", params={"features": "1"}, json=as_request(row)
    ).json()
    for name in FEATURE_NAMES:
        assert answer["features"][name] == pytest.approx(float(row[name]), rel=1e-9, abs=1e-12)


def test_record_false_keeps_probes_out_of_the_recent_events(start_server) -> None:
    server = start_server()
    probe = {
        "transaction_id": 1,
        "tx_datetime": "2018-05-10T12:00:00",
        "customer_id": 0,
        "terminal_id": 0,
        "tx_amount": 42.0,
    }
    url = f"{server.url}/invocations"
    assert httpx.post(url, params={"record": "false"}, json=probe).status_code == 200
    assert len(server.service.recent) == 0
    assert httpx.post(url, json=probe).status_code == 200
    assert len(server.service.recent) == 1
    assert httpx.post(url, params={"record": "nope"}, json=probe).status_code == 400


def test_a_new_store_loads_in_the_background_while_requests_keep_their_answers(
    start_server, lake, tmp_path
) -> None:
    """With the file checked on every request, a newly published store is loaded by a
    background thread; requests sent meanwhile are all answered by the model."""
    path = publish_store(lake.features, day_bounds_seconds(STORE_DAY)[0], tmp_path / "store")
    server = start_server(online_store_path=str(path), store_check_seconds=0.0)
    generation = server.service.store.generation
    rows = lake.day(SCORED_DAY).head(400).to_dict("records")
    newer = publish_store(lake.features, lake.as_of_seconds, tmp_path / "staging")
    shutil.move(newer, path)
    answers = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for row in rows:
            answers.append(client.post("/invocations", json=as_request(row)).json())
            if server.service.store.generation > generation and len(answers) >= 50:
                break
    assert server.service.store.generation == generation + 1, "the new store never loaded"
    assert server.service.store.as_of_seconds == lake.as_of_seconds
    assert all(answer["fallback"] is False for answer in answers)


def _not_a_database(path: Path) -> None:
    path.write_bytes(b"not a database" * 100)


def _text_where_numbers_belong(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        for table in ("card_history", "terminal_history"):
            connection.execute(
                f"CREATE TABLE {table} (transaction_id, tx_time_seconds, customer_id, "
                "terminal_id, tx_amount, tx_fraud)"
            )
            connection.execute(f"INSERT INTO {table} VALUES ('a', 'b', 'c', 'd', 'e', 'f')")
    connection.close()


@pytest.mark.parametrize("write_broken", [_not_a_database, _text_where_numbers_belong])
def test_an_unreadable_new_store_leaves_the_previous_one_serving(
    start_server, lake, tmp_path, write_broken
) -> None:
    path = publish_store(lake.features, lake.as_of_seconds, tmp_path / "store")
    server = start_server(online_store_path=str(path), store_check_seconds=3600)
    row = lake.day(SCORED_DAY).iloc[0]
    before = httpx.post(
        f"{server.url}/invocations", params={"features": "1", "record": "0"}, json=as_request(row)
    ).json()
    broken = tmp_path / "broken.sqlite"
    write_broken(broken)
    broken.replace(path)  # a bad file renamed into place
    status = httpx.post(f"{server.url}/admin/refresh-store").json()
    assert status["changed"] is False and status["available"] is True
    assert "unreadable online store" in status["error"]
    after = httpx.post(
        f"{server.url}/invocations", params={"features": "1", "record": "0"}, json=as_request(row)
    ).json()
    assert after["fallback"] is False and after["features"] == before["features"]
