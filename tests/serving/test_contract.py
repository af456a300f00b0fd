"""The SageMaker contract over real HTTP: /ping, /invocations with JSON and CSV, and every
kind of bad input answered with a 4xx and a message -- never a 500 -- while the service keeps
serving."""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest

from tests.serving.conftest import REQUEST_FIELDS, SCORED_DAY, as_request

GOOD = {
    "transaction_id": 10_000_001,
    "tx_datetime": "2018-05-10T12:00:00",
    "customer_id": 5,
    "terminal_id": 7,
    "tx_amount": 42.5,
}


def body(**changes) -> dict:
    record = {**GOOD, **changes}
    return {k: v for k, v in record.items() if v is not _DROP}


_DROP = object()
JSON_HEADERS = {"content-type": "application/json"}
CSV_HEADERS = {"content-type": "text/csv"}
HEADER = ",".join(REQUEST_FIELDS)
GOOD_ROW = "10000001,2018-05-10T12:00:00,5,7,42.5"

BAD_JSON: dict[str, tuple[bytes | str, int, str]] = {
    # name: (body, status, a word the message must contain)
    "malformed": ('{"transaction_id": 1,', 400, "malformed"),
    "trailing_garbage": (json.dumps(GOOD) + "}", 400, "malformed"),
    "empty_body": ("", 400, "empty"),
    "not_an_object_number": ("42", 400, "number"),
    "not_an_object_string": ('"hello"', 400, "string"),
    "null": ("null", 400, "null"),
    "list_of_numbers": ("[1, 2]", 400, "transactions[0]"),
    "empty_list": ("[]", 400, "no transactions"),
    "missing_field": (json.dumps(body(tx_amount=_DROP)), 400, "tx_amount"),
    "extra_field": (json.dumps(body(merchant="x")), 400, "merchant"),
    "label_field": (json.dumps(body(tx_fraud=0)), 400, "tx_fraud"),
    "id_as_string": (json.dumps(body(transaction_id="1")), 400, "transaction_id"),
    "id_as_float": (json.dumps(body(customer_id=1.5)), 400, "customer_id"),
    "id_as_bool": (json.dumps(body(terminal_id=True)), 400, "terminal_id"),
    "id_null": (json.dumps(body(terminal_id=None)), 400, "terminal_id"),
    "id_negative": (json.dumps(body(customer_id=-1)), 400, "customer_id"),
    "id_too_big": (json.dumps(body(transaction_id=2**63)), 400, "transaction_id"),
    "id_huge_literal": ('{"transaction_id": ' + "9" * 5000 + "}", 400, "malformed"),
    "amount_as_string": (json.dumps(body(tx_amount="12.5")), 400, "tx_amount"),
    "amount_nan": (json.dumps(body(tx_amount=1.0)).replace("1.0", "NaN"), 400, "NaN"),
    "amount_infinity": (json.dumps(body(tx_amount=1.0)).replace("1.0", "Infinity"), 400, "Inf"),
    "amount_minus_infinity": (
        json.dumps(body(tx_amount=1.0)).replace("1.0", "-Infinity"),
        400,
        "Inf",
    ),
    "amount_overflows_to_inf": (
        json.dumps(body(tx_amount=1.0)).replace("1.0", "1e400"),
        400,
        "inf",
    ),
    "amount_negative": (json.dumps(body(tx_amount=-0.01)), 400, ">= 0"),
    "amount_huge": (json.dumps(body(tx_amount=1e7)), 400, "at most"),
    "datetime_garbage": (json.dumps(body(tx_datetime="yesterday")), 400, "ISO-8601"),
    "datetime_bad_month": (json.dumps(body(tx_datetime="2018-13-01T00:00:00")), 400, "ISO-8601"),
    "datetime_number": (json.dumps(body(tx_datetime=1525953600)), 400, "tx_datetime"),
    "datetime_too_early": (json.dumps(body(tx_datetime="1960-01-01T00:00:00")), 400, "1970"),
    "datetime_too_long": (
        json.dumps(body(tx_datetime="2018-05-10T12:00:00" + " " * 80)),
        400,
        "longer",
    ),
    "duplicate_key": ('{"transaction_id": 1, "transaction_id": 2}', 400, "twice"),
    "duplicate_ids_in_list": (json.dumps([GOOD, GOOD]), 400, "more than once"),
    "deep_nesting": ("[" * 20_000 + "]" * 20_000, 400, "malformed"),
    "not_utf8": (b'{"transaction_id": "\xff\xfe"}', 400, "UTF-8"),
}


@pytest.fixture(scope="module", params=[False, True], ids=["in_process", "scoring_process"])
def server(lake, request):
    """The contract holds whether the service scores in the HTTP process or in its own."""
    from fraud_orchestration.serving.app import ServingConfig
    from fraud_orchestration.serving.server import BackgroundServer

    config = ServingConfig(
        online_store_path=str(lake.store_path),
        model_dir=str(lake.model_dir),
        model_version="v1",
        max_rows=50,
        max_body_bytes=64 * 1024,
        budget_ms=2000.0,
        scoring_process=request.param,
    )
    with BackgroundServer(config) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def assert_still_serving(client: httpx.Client) -> None:
    response = client.post("/invocations", json=GOOD)
    assert response.status_code == 200, response.text
    assert response.json()["transaction_id"] == GOOD["transaction_id"]


def assert_refused(response: httpx.Response, status: int, word: str) -> None:
    assert response.status_code == status, response.text
    answer = response.json()
    assert set(answer) == {"error", "message"}
    assert word.lower() in answer["message"].lower(), answer


@pytest.mark.parametrize("name", sorted(BAD_JSON))
def test_bad_json_is_a_4xx_with_a_message(client: httpx.Client, name: str) -> None:
    content, status, word = BAD_JSON[name]
    response = client.post("/invocations", content=content, headers=JSON_HEADERS)
    assert_refused(response, status, word)
    assert_still_serving(client)


BAD_CSV: dict[str, tuple[str, str]] = {
    "empty": ("", "empty"),
    "header_only": (HEADER + "\n", "no transactions"),
    "missing_column": (
        "transaction_id,tx_datetime,customer_id,terminal_id\n1,2018-05-10T12:00:00,5,7\n",
        "missing",
    ),
    "extra_column": (HEADER + ",tx_fraud\n" + GOOD_ROW + ",0\n", "unknown"),
    "repeated_column": (HEADER + ",tx_amount\n" + GOOD_ROW + ",1\n", "repeated"),
    "no_header": (GOOD_ROW + "\n", "header"),
    "short_row": (HEADER + "\n10000001,2018-05-10T12:00:00,5,7\n", "line 2"),
    "long_row": (HEADER + "\n" + GOOD_ROW + ",9\n", "line 2"),
    "amount_nan": (HEADER + "\n10000001,2018-05-10T12:00:00,5,7,nan\n", "tx_amount"),
    "amount_inf": (HEADER + "\n10000001,2018-05-10T12:00:00,5,7,inf\n", "tx_amount"),
    "amount_negative": (HEADER + "\n10000001,2018-05-10T12:00:00,5,7,-3\n", ">= 0"),
    "id_not_integer": (HEADER + "\n10000001,2018-05-10T12:00:00,abc,7,3\n", "customer_id"),
    "id_underscore": (HEADER + "\n10_000,2018-05-10T12:00:00,5,7,3\n", "transaction_id"),
    "bad_datetime": (HEADER + "\n10000001,10/05/2018,5,7,3\n", "ISO-8601"),
    "bad_second_row": (HEADER + "\n" + GOOD_ROW + "\n10000002,2018-05-10,5,x,3\n", "line 3"),
    "nul_byte": (HEADER + "\n10000001,2018-05-10T12:00:00,5,7,4\x002\n", "tx_amount"),
    "huge_amount_text": (HEADER + "\n10000001,2018-05-10,5,7," + "9" * 5000 + "\n", "tx_amount"),
    "huge_field": (HEADER + "\n" + '"' + "9" * 60_000 + '",2018-05-10,5,7,3\n', "transaction_id"),
    "unterminated_quote": (HEADER + '\n"10000001,2018-05-10T12:00:00,5,7,3\n', "line 2"),
}


@pytest.mark.parametrize("name", sorted(BAD_CSV))
def test_bad_csv_is_a_400_with_a_message(client: httpx.Client, name: str) -> None:
    content, word = BAD_CSV[name]
    response = client.post("/invocations", content=content, headers=CSV_HEADERS)
    assert_refused(response, 400, word)
    assert_still_serving(client)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded", ""]
)
def test_unsupported_content_type_is_415(client: httpx.Client, content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/invocations", content=json.dumps(GOOD), headers=headers)
    assert_refused(response, 415, "application/json or text/csv")
    assert_still_serving(client)


def test_oversize_body_is_413(client: httpx.Client) -> None:
    padding = json.dumps(body(tx_datetime="x" * (70 * 1024)))
    response = client.post("/invocations", content=padding, headers=JSON_HEADERS)
    assert_refused(response, 413, "bytes")
    assert_still_serving(client)


def test_oversize_streamed_body_is_413(client: httpx.Client) -> None:
    """No Content-Length (chunked): the limit is enforced while reading."""

    def chunks():
        for _ in range(200):
            yield b" " * 1024

    response = client.post("/invocations", content=chunks(), headers=JSON_HEADERS)
    assert_refused(response, 413, "bytes")
    assert_still_serving(client)


def test_too_many_transactions_is_413(client: httpx.Client) -> None:
    batch = [body(transaction_id=i) for i in range(51)]
    response = client.post("/invocations", json=batch)
    assert_refused(response, 413, "at most 50")
    rows = "\n".join(f"{i},2018-05-10T12:00:00,5,7,1" for i in range(51))
    response = client.post("/invocations", content=HEADER + "\n" + rows, headers=CSV_HEADERS)
    assert_refused(response, 413, "at most 50")
    assert_still_serving(client)


def test_bad_query_flag_is_400(client: httpx.Client) -> None:
    response = client.post("/invocations", params={"features": "maybe"}, json=GOOD)
    assert_refused(response, 400, "features")


def test_ping(client: httpx.Client) -> None:
    response = client.get("/ping")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model_version": "v1", "fallback_only": False}


def check_answer(answer: dict, transaction_id: int) -> None:
    assert answer["transaction_id"] == transaction_id
    assert 0.0 <= answer["score"] <= 1.0
    assert answer["decision"] == ("fraud" if answer["score"] >= answer["threshold"] else "genuine")
    assert answer["model_version"] == "v1"
    assert answer["fallback"] is False and answer["fallback_reason"] is None
    assert 1 <= len(answer["reasons"]) <= 3
    contributions = [reason["contribution"] for reason in answer["reasons"]]
    assert contributions == sorted(contributions, reverse=True)


def test_single_json_transaction(client: httpx.Client, lake) -> None:
    row = lake.day(SCORED_DAY).iloc[0]
    response = client.post("/invocations", json=as_request(row))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    check_answer(response.json(), int(row["transaction_id"]))


def test_json_list_keeps_the_request_order(client: httpx.Client, lake) -> None:
    rows = lake.day(SCORED_DAY).iloc[100:120].iloc[::-1]
    response = client.post("/invocations", json=[as_request(r) for _, r in rows.iterrows()])
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert [p["transaction_id"] for p in predictions] == rows["transaction_id"].tolist()
    for prediction, transaction_id in zip(predictions, rows["transaction_id"], strict=True):
        check_answer(prediction, int(transaction_id))


def test_csv_request_and_csv_answer(client: httpx.Client, lake) -> None:
    rows = lake.day(SCORED_DAY).iloc[200:210]
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=REQUEST_FIELDS[::-1])  # any column order
    writer.writeheader()
    for _, row in rows.iterrows():
        writer.writerow(as_request(row))
    response = client.post(
        "/invocations", content=table.getvalue(), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["transaction_id"] for p in predictions] == rows["transaction_id"].tolist()
    response = client.post(
        "/invocations",
        content=table.getvalue(),
        headers={"content-type": "text/csv; charset=utf-8", "accept": "text/csv"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    answers = list(csv.DictReader(io.StringIO(response.text)))
    assert [int(a["transaction_id"]) for a in answers] == rows["transaction_id"].tolist()
    assert {a["model_version"] for a in answers} == {"v1"}


def test_datetime_with_offset_is_utc(client: httpx.Client) -> None:
    plain = client.post("/invocations", params={"features": "1"}, json=GOOD).json()
    shifted = client.post(
        "/invocations",
        params={"features": "1"},
        json=body(transaction_id=GOOD["transaction_id"], tx_datetime="2018-05-10T14:00:00+02:00"),
    ).json()
    assert plain["features"] == shifted["features"]


def test_no_500_on_get_or_unknown_path(client: httpx.Client) -> None:
    wrong_method = client.get("/invocations")
    assert_refused(wrong_method, 405, "POST")
    assert wrong_method.headers["allow"] == "POST"
    assert_refused(client.post("/ping"), 405, "GET")
    assert_refused(client.get("/nowhere"), 404, "nowhere")


def test_a_failure_of_the_service_is_a_500_with_a_message(client, server, monkeypatch) -> None:
    if server.app.config.scoring_process:
        pytest.skip("the fault is injected into the service object, here in another process")

    def status():
        raise RuntimeError("a bug")

    monkeypatch.setattr(server.service, "status", status)
    response = client.get("/admin/status")
    assert_refused(response, 500, "log")
    assert response.json()["error"] == "internal_error"


def test_answer_headers(client: httpx.Client) -> None:
    response = client.post("/invocations", json=GOOD)
    assert response.headers["x-model-version"] == "v1"
    assert float(response.headers["x-scoring-ms"]) > 0
    assert int(response.headers["content-length"]) == len(response.content)


def test_stopping_the_server_stops_the_scoring_threads(start_server) -> None:
    server = start_server()
    server.stop()  # the lifespan shutdown closes the service
    for thread in server.service._threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
