"""The evaluators -- vectorised (``serving.window_sql``) and row by row (``serving.row_sql``)
-- against DuckDB running the same text.

The feature file is the case that matters (every feature, enumerated, on random frames with
same-second ties and window edges); a second text exercises the rest of the dialect the
evaluator claims (other frames, MIN/SUM, NULL logic, CASE ELSE, ``%`` of negatives, x / 0);
and text outside the dialect is refused when compiled, never evaluated differently.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from fraud_orchestration.features import FEATURE_NAMES, FEATURES, feature_sql
from fraud_orchestration.serving import row_sql
from fraud_orchestration.serving.features import (
    FeatureComputer,
    OnlineStoreReader,
    RecentEvents,
    canary_rows,
)
from fraud_orchestration.serving.row_sql import RowQuery
from fraud_orchestration.serving.window_kernel import _numpy_sum
from fraud_orchestration.serving.window_sql import CompiledQuery, DivisionByZero, UnsupportedSQL
from fraud_orchestration.settings import KERNEL_DIRECTORY_VARIABLE


@pytest.fixture(params=[CompiledQuery, RowQuery], ids=["vectorised", "rows"])
def evaluator(request) -> type[CompiledQuery] | type[RowQuery]:
    return request.param


def random_frame(seed: int, rows: int, cards: int, terminals: int, days: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = 1_522_540_800
    seconds = np.sort(rng.integers(start, start + days * 86_400, rows))
    seconds[1::17] = seconds[0:-1:17]  # same-second peers
    seconds[5::23] = np.minimum(seconds[4:-1:23] + 7 * 86_400, seconds.max())  # delay edges
    return pd.DataFrame(
        {
            "transaction_id": np.arange(rows, dtype=np.int64),
            "tx_time_seconds": seconds.astype(np.int64),
            "customer_id": rng.integers(0, cards, rows),
            "terminal_id": rng.integers(0, terminals, rows),
            "tx_amount": np.round(rng.gamma(2.0, 40.0, rows), 2) * (rng.random(rows) > 0.02),
            "tx_fraud": (rng.random(rows) < 0.15).astype(np.int64),
        }
    )


def duckdb_result(sql: str, frame: pd.DataFrame) -> pd.DataFrame:
    with duckdb.connect() as connection:
        source = frame.assign(tx_datetime=frame["tx_time_seconds"].astype("datetime64[s]"))
        connection.register("transactions", source)
        return connection.execute(sql).df().sort_values("transaction_id").reset_index(drop=True)


def compiled_result(
    sql: str, frame: pd.DataFrame, outputs: list[str], evaluator=CompiledQuery
) -> dict[str, np.ndarray]:
    columns = {name: frame[name].to_numpy(dtype=np.float64) for name in frame.columns}
    return evaluator(sql, outputs).evaluate(columns, np.arange(len(frame)))


def assert_same(want: pd.Series, got: np.ndarray, exact: bool, name: str) -> None:
    want_values = want.to_numpy(dtype=np.float64, na_value=np.nan)
    assert np.array_equal(np.isnan(want_values), np.isnan(got)), f"{name}: NULLs differ"
    if exact:
        assert np.array_equal(want_values, got, equal_nan=True), name
    else:
        np.testing.assert_allclose(got, want_values, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize(
    ("seed", "rows", "cards", "terminals", "days"),
    [(0, 3000, 40, 15, 60), (1, 800, 3, 2, 45), (2, 500, 200, 200, 10)],
)
def test_every_feature_equals_duckdb(evaluator, seed, rows, cards, terminals, days) -> None:
    frame = random_frame(seed, rows, cards, terminals, days)
    want = duckdb_result(feature_sql(), frame)
    got = compiled_result(feature_sql(), frame, FEATURE_NAMES, evaluator)
    for feature in FEATURES:
        assert_same(want[feature.name], got[feature.name], True, feature.name)


def test_only_the_requested_rows_are_computed_and_in_their_order(evaluator) -> None:
    frame = random_frame(3, 1000, 10, 5, 40)
    everything = compiled_result(feature_sql(), frame, FEATURE_NAMES, evaluator)
    columns = {name: frame[name].to_numpy(dtype=np.float64) for name in frame.columns}
    rows = np.array([999, 3, 500, 4])
    some = evaluator(feature_sql(), FEATURE_NAMES).evaluate(columns, rows)
    for name in FEATURE_NAMES:
        assert np.array_equal(some[name], everything[name][rows], equal_nan=True), name


DIALECT = """
SELECT
  transaction_id,
  SUM(tx_amount) OVER around AS amount_around,
  MIN(tx_amount) OVER around AS smallest_around,
  MAX(CASE WHEN tx_fraud = 1 THEN tx_amount END) OVER ahead AS largest_fraud_ahead,
  AVG(CASE WHEN tx_amount > 100 THEN NULL ELSE tx_amount END) OVER pair AS small_mean,
  COUNT(CASE WHEN tx_amount > 50 AND NOT tx_fraud = 1 OR tx_amount < 1 THEN 1 END) OVER around
    AS odd_count,
  (tx_time_seconds - 1522540800 - 400000) % 86400 AS negative_remainder,
  tx_amount / NULLIF(tx_fraud - tx_fraud, 0) AS divided_by_null,
  COALESCE(NULLIF(tx_fraud, 0), -(customer_id * 2) + 1.5) AS coalesced,
  CAST(tx_amount > 60 AS INT) - CAST(NULL AS DOUBLE) AS null_arithmetic,
  CASE WHEN tx_fraud = 1 THEN 'x' IS NULL END AS unused
FROM transactions
WINDOW
  around AS (PARTITION BY terminal_id ORDER BY tx_time_seconds
    RANGE BETWEEN 3600 PRECEDING AND 3600 FOLLOWING),
  ahead AS (PARTITION BY customer_id ORDER BY tx_time_seconds
    RANGE BETWEEN 1 FOLLOWING AND 864000 FOLLOWING),
  pair AS (PARTITION BY customer_id, terminal_id ORDER BY tx_time_seconds
    RANGE BETWEEN 86400 PRECEDING AND CURRENT ROW)
"""
DIALECT_OUTPUTS = [
    "amount_around",
    "smallest_around",
    "largest_fraud_ahead",
    "small_mean",
    "odd_count",
    "negative_remainder",
    "divided_by_null",
    "coalesced",
    "null_arithmetic",
]


def test_the_rest_of_the_dialect_equals_duckdb(evaluator) -> None:
    sql = DIALECT.replace("  CASE WHEN tx_fraud = 1 THEN 'x' IS NULL END AS unused\n", "")
    sql = sql.replace("AS null_arithmetic,\n", "AS null_arithmetic\n")
    frame = random_frame(4, 600, 5, 3, 20)
    with duckdb.connect() as connection:
        connection.register("transactions", frame)
        want = connection.execute(sql).df().sort_values("transaction_id")
    got = compiled_result(sql, frame, DIALECT_OUTPUTS, evaluator)
    for name in DIALECT_OUTPUTS:
        assert_same(want[name].reset_index(drop=True), got[name], False, name)
    assert np.isnan(got["divided_by_null"]).all()
    assert (got["negative_remainder"] < 0).any()


ROUNDING = """
SELECT
  transaction_id,
  ROUND(tx_amount) AS rounded,
  CAST(tx_amount AS BIGINT) AS cast_bigint,
  ROUND(tx_amount * 100) AS cents
FROM transactions
"""


def test_round_and_cast_round_as_duckdb(evaluator) -> None:
    """ROUND rounds half away from zero, CAST to an integer half to even (DuckDB 2)."""
    amounts = [
        0.5,
        -0.5,
        1.5,
        2.5,
        -2.5,
        0.49999999999999994,
        -0.49999999999999994,
        0.0,
        -0.4,
        1e15 + 0.5,
        4503599627370497.0,
        57.16,
        0.285,
        1.005,
        123.455,
    ]
    frame = random_frame(6, len(amounts), 2, 2, 3).assign(tx_amount=amounts)
    with duckdb.connect() as connection:
        connection.register("transactions", frame)
        want = connection.execute(ROUNDING).df().sort_values("transaction_id")
    got = compiled_result(ROUNDING, frame, ["rounded", "cast_bigint", "cents"], evaluator)
    for name in ("rounded", "cast_bigint", "cents"):
        assert_same(want[name].reset_index(drop=True), got[name], True, name)
    assert got["rounded"][5] == 0.0 and got["cents"][11] == 5716.0


def test_division_by_zero_is_an_error(evaluator) -> None:
    """DuckDB 2 answers ``x / 0`` with an error or with inf depending on the plan, Spark 4
    (ANSI) with an error: the evaluator raises rather than pick a value. The feature SQL
    guards every division with NULLIF."""
    sql = "SELECT transaction_id, tx_amount / (tx_fraud - tx_fraud) AS bad FROM transactions"
    with pytest.raises(DivisionByZero):
        compiled_result(sql, random_frame(5, 50, 2, 2, 3), ["bad"], evaluator)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (DIALECT, "unexpected character"),  # a string literal
        ("SELECT COUNT(*) OVER w AS n FROM t WINDOW w AS (PARTITION BY a ORDER BY b "
         "ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)", "only RANGE frames"),
        ("SELECT LN(tx_amount) AS x FROM t", "function LN"),
        ("SELECT COUNT(*) OVER (PARTITION BY a ORDER BY b) AS n FROM t", "named"),
        ("SELECT tx_amount + 1 FROM t", "AS name"),
        ("SELECT COUNT(*) OVER w AS n FROM t", "not defined"),
        ("SELECT a AS b FROM (SELECT 1 AS a)", "expected a name"),
        ("SELECT a AS b FROM t WHERE a > 1", "unsupported clause"),
        ("SELECT SUM(tx_amount) AS s FROM t", "window aggregate"),
    ],
)  # fmt: skip
def test_text_outside_the_dialect_is_refused(evaluator, text: str, complaint: str) -> None:
    with pytest.raises(UnsupportedSQL, match=complaint):
        evaluator(text)


def test_a_refused_text_leaves_the_service_on_a_sql_engine() -> None:
    """A feature written with a function the evaluator lacks: the text still runs, on SQLite
    (which passes the canary) for small requests, and the status says why."""
    sql = feature_sql().replace(
        "  tx_amount,\n", "  tx_amount,\n  ABS(tx_amount) AS absolute_amount,\n", 1
    )
    computer = FeatureComputer(OnlineStoreReader(None), RecentEvents(), engine="auto", sql=sql)
    assert computer.compiled is None and computer.sqlite is not None
    assert computer.engine_note.startswith("compiled refused: the text is not in its dialect")
    assert computer.engine_note.endswith("using sqlite")
    rows = canary_rows()
    assert computer.compute_rows(rows, [rows[-1][0]]).values.shape == (1, len(FEATURE_NAMES))


def test_auto_runs_small_requests_row_by_row_and_larger_ones_vectorised() -> None:
    computer = FeatureComputer(OnlineStoreReader(None), RecentEvents(), engine="auto")
    assert computer.status()["rows"] and computer.engine_note is None
    assert computer.engine_for(1).name == "rows"
    assert computer.engine_for(computer.row_max_rows).name == "rows"
    assert computer.engine_for(computer.row_max_rows + 1).name == "compiled"
    rows = canary_rows()
    ids = [row[0] for row in rows[-3:]]
    by_rows = computer.compute_rows(rows, ids)
    vectorised = computer.compute_rows(rows, ids, computer.compiled)
    np.testing.assert_allclose(by_rows.values, vectorised.values, rtol=1e-12, atol=1e-12)
    only = FeatureComputer(OnlineStoreReader(None), RecentEvents(), engine="compiled")
    assert only.engine_for(1).name == "compiled" and only.rows is None


def test_a_kernel_that_cannot_be_written_leaves_the_vectorised_evaluator(
    tmp_path, monkeypatch
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv(KERNEL_DIRECTORY_VARIABLE, str(blocked))
    computer = FeatureComputer(OnlineStoreReader(None), RecentEvents(), engine="auto")
    assert computer.rows is None and computer.compiled is not None
    assert computer.engine_note.startswith("rows refused: ")
    assert computer.engine_for(1).name == "compiled"


def test_the_generated_kernel_is_written_once_and_reused(tmp_path, monkeypatch) -> None:
    """Numba's cache of the machine code is valid while the kernel's file is unchanged: a
    second query (another process, a restart) must find the file and leave it as it is."""
    monkeypatch.setenv(KERNEL_DIRECTORY_VARIABLE, str(tmp_path))
    RowQuery(feature_sql(), FEATURE_NAMES)
    (kernel,) = tmp_path.glob("features_*.py")
    written = kernel.stat().st_mtime_ns
    RowQuery(feature_sql(), FEATURE_NAMES)
    assert [kernel] == list(tmp_path.glob("features_*.py"))
    assert kernel.stat().st_mtime_ns == written
    other = RowQuery(feature_sql(), FEATURE_NAMES[:3])  # another text: another kernel
    assert len(list(tmp_path.glob("features_*.py"))) == 2
    frame = random_frame(3, 200, 4, 4, 10)
    assert set(compiled_result(feature_sql(), frame, FEATURE_NAMES[:3], RowQuery)) == set(
        other.names
    )


def test_a_changed_helper_module_makes_a_new_kernel(tmp_path, monkeypatch) -> None:
    """Numba would keep a cached kernel whose helpers (``window_kernel``) changed: their
    source's hash is part of the kernel's, so a change compiles a new one."""
    monkeypatch.setenv(KERNEL_DIRECTORY_VARIABLE, str(tmp_path))
    RowQuery(feature_sql(), FEATURE_NAMES)
    monkeypatch.setattr(row_sql, "_fingerprint", lambda module: "another version")
    RowQuery(feature_sql(), FEATURE_NAMES)
    assert len(list(tmp_path.glob("features_*.py"))) == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_two_evaluators_agree_bit_for_bit(seed) -> None:
    """A transaction's features must not depend on the size of the batch it was scored in,
    that is on the evaluator ``auto`` picked for it."""
    frame = random_frame(seed, 1500, 8, 6, 50)
    vectorised = compiled_result(feature_sql(), frame, FEATURE_NAMES, CompiledQuery)
    by_rows = compiled_result(feature_sql(), frame, FEATURE_NAMES, RowQuery)
    for name in FEATURE_NAMES:
        assert np.array_equal(vectorised[name], by_rows[name], equal_nan=True), name


@pytest.mark.parametrize("size", [1, 7, 8, 9, 127, 128, 129, 300, 1000, 4099])
def test_the_row_evaluator_sums_in_numpys_order(size) -> None:
    values = np.random.default_rng(size).gamma(2.0, 40.0, size) * np.resize([1, -1, 1], size)
    want = np.add.reduceat(np.concatenate((values, [0.0])), [0, size])[0]
    assert _numpy_sum(values, size) == want
