"""THE feature SQL evaluated one output row at a time, for small requests.

:mod:`serving.window_sql` evaluates the text with NumPy, a few hundred calls whatever the
number of rows: on the handful of transactions a single request or a small batch brings, each
call costs its fixed overhead, not its work. Here the same parsed text runs per output row:
the windows and their aggregates in one compiled loop (:mod:`serving.window_kernel`: per row,
its partition sorted by the ORDER BY value, a window's frame as two binary searches), and the
scalar expressions over them on Python floats. Per row that is cheaper than the NumPy
evaluator's fixed cost, so the service uses it for batches of up to ``row_max_rows``
transactions.

Same dialect, same answers bit for bit: the parser is :mod:`serving.window_sql`'s (text
outside the dialect is refused there), aggregate arguments are evaluated over the frame by
its NumPy closures, sums add in NumPy's order, NULL is NaN, and the service uses this
evaluator only after it reproduced DuckDB's features on the canary frame. SQL's NULL rules are
spelt out where Python's differ: a comparison with NULL is NULL, ``x / 0`` raises
:class:`DivisionByZero`, aggregates skip NULL and are NULL over no value (``COUNT`` is 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fraud_orchestration.serving.window_kernel import FUNCTIONS, window_aggregates
from fraud_orchestration.serving.window_sql import (
    Columns,
    DivisionByZero,
    Node,
    UnsupportedSQL,
    _compile,
    _Context,
    _order_values,
    _partition_keys,
    parse_outputs,
)

NAN = math.nan
Row = dict[Any, float]
"""One output row's values: columns by name, aggregates by their node."""
Scalar = Callable[[Row], float]
Sorting = tuple[tuple[str, ...], str]
"""A window's (PARTITION BY columns, ORDER BY column): its windows share each row's partition."""


# --------------------------------------------------------------------------- scalars


def _is_null(value: float) -> bool:
    return value != value  # NaN


def _compile_scalar(node: Node) -> Scalar:
    """``node`` as a closure over one row's values (columns and aggregates)."""
    kind = node[0]
    if kind == "column":
        name = node[1]
        return lambda row: row[name]
    if kind in ("number", "null"):
        constant = node[1] if kind == "number" else NAN
        return lambda _: constant
    if kind == "aggregate":
        return lambda row: row[node]
    if kind == "op":
        return _arithmetic(node[1], _compile_scalar(node[2]), _compile_scalar(node[3]))
    if kind == "compare":
        return _comparison(node[1], _compile_scalar(node[2]), _compile_scalar(node[3]))
    if kind == "cast_int":  # DuckDB rounds half away from zero
        value = _compile_scalar(node[1])

        def cast_int(row: Row) -> float:
            v = value(row)
            if not math.isfinite(v):  # NULL (and infinity) stays as it is
                return v
            return math.copysign(math.floor(abs(v) + 0.5), v) + 0.0

        return cast_int
    if kind == "case":
        branches = [(_compile_scalar(c), _compile_scalar(v)) for c, v in node[1]]
        otherwise = _compile_scalar(node[2])

        def case(row: Row) -> float:
            for condition, value in branches:
                if condition(row) == 1.0:
                    return value(row)
            return otherwise(row)

        return case
    if kind == "call":
        return _call(node[1], [_compile_scalar(argument) for argument in node[2]])
    if kind in ("and", "or"):
        return _logic(kind, _compile_scalar(node[1]), _compile_scalar(node[2]))
    if kind == "not":
        value = _compile_scalar(node[1])

        def negate(row: Row) -> float:
            v = value(row)
            return v if _is_null(v) else float(v != 1.0)

        return negate
    raise UnsupportedSQL(f"cannot evaluate {kind}")


def _arithmetic(symbol: str, a: Scalar, b: Scalar) -> Scalar:
    if symbol == "+":
        return lambda row: a(row) + b(row)
    if symbol == "-":
        return lambda row: a(row) - b(row)
    if symbol == "*":
        return lambda row: a(row) * b(row)

    def divide(row: Row) -> float:
        x, y = a(row), b(row)
        if y == 0.0:
            if _is_null(x):
                return NAN
            raise DivisionByZero(f"division by zero in {symbol}")
        if _is_null(x) or _is_null(y):
            return NAN
        return x / y if symbol == "/" else math.fmod(x, y)  # SQL's % truncates toward zero

    return divide


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "=": lambda x, y: x == y,
    "<>": lambda x, y: x != y,
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
}


def _comparison(symbol: str, a: Scalar, b: Scalar) -> Scalar:
    compare = _COMPARE[symbol]

    def comparison(row: Row) -> float:
        x, y = a(row), b(row)
        if _is_null(x) or _is_null(y):
            return NAN
        return 1.0 if compare(x, y) else 0.0

    return comparison


def _logic(kind: str, a: Scalar, b: Scalar) -> Scalar:
    decisive = 0.0 if kind == "and" else 1.0  # FALSE decides AND, TRUE decides OR

    def logic(row: Row) -> float:
        x, y = a(row), b(row)
        if x == decisive or y == decisive:
            return decisive
        if x == 1.0 - decisive and y == 1.0 - decisive:
            return 1.0 - decisive
        return NAN

    return logic


def _call(function: str, arguments: list[Scalar]) -> Scalar:
    if function == "COALESCE":

        def coalesce(row: Row) -> float:
            for argument in arguments:
                value = argument(row)
                if not _is_null(value):
                    return value
            return NAN

        return coalesce
    if function == "NULLIF":
        a, b = arguments

        def nullif(row: Row) -> float:
            x = a(row)
            return NAN if x == b(row) else x

        return nullif
    value = arguments[0]  # FLOOR

    def floor(row: Row) -> float:
        v = value(row)
        return float(math.floor(v)) if math.isfinite(v) else v

    return floor


# --------------------------------------------------------------------------- query


class RowQuery:
    """The parsed text, evaluated row by row; the interface of
    :class:`~fraud_orchestration.serving.window_sql.CompiledQuery`."""

    def __init__(self, text: str, outputs: Sequence[str] | None = None) -> None:
        query, selected, seen = parse_outputs(text, outputs)
        self.names = [name for name, _ in selected]
        self.outputs = [_compile_scalar(node) for _, node in selected]
        self.aggregates = list(seen)
        argument_nodes = list(dict.fromkeys(node[2] for node in seen))
        self.arguments = [_compile(node) for node in argument_nodes]
        """Aggregate arguments, evaluated over the whole frame with NumPy."""
        window_names = list(dict.fromkeys(node[3] for node in seen))
        windows = [query.windows[name] for name in window_names]
        self.sortings: list[Sorting] = list(
            dict.fromkeys((window.partition_by, window.order_by) for window in windows)
        )
        self.widest = max((len(keys) for keys, _ in self.sortings), default=0)
        self.plan = (
            np.array([self.sortings.index((w.partition_by, w.order_by)) for w in windows]),
            np.array([w.lower for w in windows], dtype=np.int64),
            np.array([w.upper for w in windows], dtype=np.int64),
            np.array([window_names.index(node[3]) for node in seen], dtype=np.int64),
            np.array([FUNCTIONS[node[1]] for node in seen], dtype=np.int64),
            np.array([argument_nodes.index(node[2]) for node in seen], dtype=np.int64),
        )
        """The windows' sortings and frame offsets; the aggregates' windows, functions and
        arguments (:func:`~fraud_orchestration.serving.window_kernel.window_aggregates`)."""

    def evaluate(self, columns: Columns, rows: np.ndarray) -> Columns:
        """The outputs for the input rows ``rows`` (indices), each window over all rows."""
        size = len(next(iter(columns.values())))
        keys = np.zeros((len(self.sortings), self.widest, size))
        order = np.empty((len(self.sortings), size), dtype=np.int64)
        checked: dict[Any, np.ndarray] = {}  # each column checked once, however many sorts
        for s, (names, order_by) in enumerate(self.sortings):
            if order_by not in checked:
                checked[order_by] = _order_values(columns, order_by)
            order[s] = checked[order_by]
            for k, name in enumerate(names):
                if (name,) not in checked:
                    (checked[(name,)],) = _partition_keys(columns, (name,))
                keys[s, k] = checked[(name,)]
        arguments = np.zeros((len(self.arguments), max(size, 1)))
        constant = np.zeros(len(self.arguments), dtype=np.bool_)
        with np.errstate(divide="ignore", invalid="ignore"):
            everything = _Context(columns, {})
            for g, argument in enumerate(self.arguments):
                value = argument(everything)
                constant[g] = np.ndim(value) == 0
                arguments[g] = value
        rows = np.asarray(rows, dtype=np.int64)
        aggregates = window_aggregates(rows, keys, order, *self.plan, arguments, constant)
        values: list[Row] = [
            {name: float(column[row]) for name, column in columns.items()} for row in rows
        ]
        for row_values, row_aggregates in zip(values, aggregates.tolist(), strict=True):
            row_values.update(zip(self.aggregates, row_aggregates, strict=True))
        results = np.array(
            [[output(row_values) for output in self.outputs] for row_values in values],
            dtype=np.float64,
        ).reshape(len(values), len(self.outputs))
        return {name: results[:, position] for position, name in enumerate(self.names)}
