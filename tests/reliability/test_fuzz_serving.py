"""The scoring service's input handling under hypothesis, through the ASGI app in this
process (uvicorn in a thread on a loopback port), then the nastiest bodies against the real
process too: bad input is always a 4xx with a message, never a 500.
(tests/serving/test_schema_fuzz.py fuzzes the parser alone.)"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_orchestration.serving.app import ServingConfig
from fraud_orchestration.serving.server import BackgroundServer
from tests.serving.test_schema_fuzz import GOOD

pytestmark = pytest.mark.reliability

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
    | st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "\ud800"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
NASTY = [
    b'{"transaction_id": 1, "tx_datetime": "0001-01-01T00:00:00+01:00", "customer_id": 1, '
    b'"terminal_id": 1, "tx_amount": 1}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"transaction_id": 1' + b"0" * 5000 + b"}",
    b'{"tx_amount": NaN}',
    b"\xff\xfe not utf-8",
    json.dumps([GOOD] * 1001).encode(),
]


@pytest.fixture(scope="module")
def client(lake) -> Iterator[httpx.Client]:
    config = ServingConfig(
        online_store_path=str(lake.store_path), model_dir=str(lake.model_dir), budget_ms=2000
    )
    with BackgroundServer(config) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def check(response: httpx.Response) -> None:
    assert response.status_code in (200, 400, 413, 415), response.text[:300]
    body = response.json()
    if response.status_code != 200:
        assert body["error"] and body["message"]


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.dictionaries(st.sampled_from([*GOOD, "tx_fraud", "\ud800"]), VALUES, max_size=5),
    st.sampled_from(["application/json", "text/csv", "application/json; charset=utf-8", ""]),
    st.booleans(),
)
def test_the_app_answers_4xx_or_200_never_500(client, changes, content_type, as_list) -> None:
    record = {**GOOD, **changes}
    body = json.dumps([record, {**record, "transaction_id": 2}] if as_list else record)
    if content_type == "text/csv":
        body = ",".join(record) + "\n" + ",".join(str(v) for v in record.values())
    content = body.encode("utf-8", "surrogatepass")  # a lone surrogate is invalid UTF-8
    check(client.post("/invocations", content=content, headers={"content-type": content_type}))


@pytest.mark.parametrize("body", NASTY, ids=range(len(NASTY)))
def test_nasty_bodies_in_process_and_against_the_real_process(client, service, body) -> None:
    headers = {"content-type": "application/json"}
    check(client.post("/invocations", content=body, headers=headers))
    response = httpx.post(f"{service.url}/invocations", content=body, headers=headers, timeout=60)
    assert 400 <= response.status_code < 500 and response.json()["message"]
