"""Whatever the body, request parsing either succeeds or raises RequestError (a 4xx): never
another exception, which the service would turn into a 500."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_orchestration.serving.schema import FIELDS, RequestError, parse_request

GOOD = {
    "transaction_id": 1,
    "tx_datetime": "2018-05-10T12:00:00",
    "customer_id": 5,
    "terminal_id": 7,
    "tx_amount": 42.5,
}
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def parses_or_refuses(body: bytes, content_type: str) -> None:
    try:
        parse_request(body, content_type, max_rows=20)
    except RequestError as error:
        assert error.status in (400, 413, 415) and error.message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["application/json", "text/csv", "x/y"]))
def test_arbitrary_bytes(body: bytes, content_type: str) -> None:
    parses_or_refuses(body, content_type)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*FIELDS, "tx_fraud", "x"]), JSON_VALUES, max_size=7))
def test_transactions_with_arbitrary_values(changes: dict) -> None:
    record = {**GOOD, **changes}
    body = json.dumps(record, allow_nan=True).encode()
    parses_or_refuses(body, "application/json")
    parses_or_refuses(json.dumps([record, record]).encode(), "application/json")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.text(max_size=12), min_size=0, max_size=7), max_size=5))
def test_arbitrary_csv(rows: list[list[str]]) -> None:
    lines = [",".join(FIELDS)] + [",".join(row) for row in rows]
    parses_or_refuses("\n".join(lines).encode(), "text/csv")
