"""THE feature SQL evaluated one output row at a time in plain Python, for small requests.

:mod:`serving.window_sql` evaluates the text with NumPy, a few hundred calls whatever the
number of rows: on the handful of transactions a single request or a small batch brings, each
call costs its fixed overhead, not its work. Here the same parsed text runs per output row
on Python floats: a window's frame is two ``bisect`` calls into the row's partition (its
rows sorted by the ORDER BY value), an aggregate is a loop over the frame's slice, and a
scalar expression a few float operations. Per row that is cheaper than the NumPy evaluator's
fixed cost, so the service uses it for batches of up to ``row_max_rows`` transactions.

Same dialect, same answers bit for bit: the parser is :mod:`serving.window_sql`'s (text
outside the dialect is refused there), aggregate arguments are evaluated over the frame by
its NumPy closures, sums add in NumPy's order (:func:`_numpy_sum`), NULL is NaN, and the
service uses this evaluator only after it reproduced DuckDB's features on the canary frame.
SQL's NULL rules are spelt out where Python's differ: a comparison with NULL is NULL,
``x / 0`` raises :class:`DivisionByZero`, aggregates skip NULL and are NULL over no value
(``COUNT`` is 0).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from functools import reduce
from operator import add
from typing import Any

import numpy as np

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


# --------------------------------------------------------------------------- aggregates


def _aggregate(function: str, values: list[float], nulls: bool) -> float:
    """``function`` over one frame's values (``nulls``: some may be NULL, which SQL skips)."""
    present = [v for v in values if v == v] if nulls else values
    if function == "COUNT":
        return float(len(present))
    if not present:
        return NAN
    if function in ("SUM", "AVG"):
        total = _numpy_sum([v if v == v else 0.0 for v in values] if nulls else values)
        return total if function == "SUM" else total / len(present)
    return float(max(present) if function == "MAX" else min(present))


def _numpy_sum(values: list[float]) -> float:
    """The sum in the order ``np.add.reduceat`` adds (the vectorised evaluator's): the first
    value, plus the rest summed pairwise (NumPy's ``pairwise_sum``: sequential below 8
    values, 8 interleaved partial sums up to 128, halves above). Floating-point addition
    depends on the order, and a transaction's features must not depend on which evaluator
    its batch ran on: with this order they are bit for bit the same
    (``tests/serving/test_window_sql.py``)."""
    return values[0] + _pairwise_sum(values[1:])


def _pairwise_sum(values: list[float]) -> float:
    """Left-to-right additions are ``reduce(add, ...)``: ``sum()`` compensates its
    rounding errors from Python 3.12 on."""
    count = len(values)
    if count < 8:
        return reduce(add, values, 0.0)
    if count <= 128:
        whole = count - count % 8
        p = [reduce(add, values[lane:whole:8]) for lane in range(8)]  # 8 interleaved sums
        total = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]))
        return reduce(add, values[whole:], total)
    half = count // 2
    half -= half % 8
    return _pairwise_sum(values[:half]) + _pairwise_sum(values[half:])


def _constant_aggregate(function: str, value: float, size: int) -> float:
    """``function`` of a constant over a frame of ``size`` rows (``COUNT(*)`` counts 1s),
    as :func:`serving.window_sql._constant_aggregate` computes it."""
    if function == "COUNT":
        return 0.0 if _is_null(value) else float(size)
    if size == 0 or _is_null(value):
        return NAN
    return size * value if function == "SUM" else value


class _Argument:
    """An aggregate argument over the frame: a constant, or values with or without NULLs."""

    def __init__(self, values: Any) -> None:
        self.constant = float(values) if np.ndim(values) == 0 else None
        self.values = None if self.constant is not None else np.asarray(values)
        self.nulls = self.values is not None and bool(np.isnan(self.values).any())


# --------------------------------------------------------------------------- query


class RowQuery:
    """The parsed text, evaluated row by row; the interface of
    :class:`~fraud_orchestration.serving.window_sql.CompiledQuery`."""

    def __init__(self, text: str, outputs: Sequence[str] | None = None) -> None:
        query, selected, seen = parse_outputs(text, outputs)
        self.names = [name for name, _ in selected]
        self.outputs = [_compile_scalar(node) for _, node in selected]
        self.arguments = {node[2]: _compile(node[2]) for node in seen}
        """Aggregate arguments, evaluated over the whole frame with NumPy."""
        by_window: dict[str, list[Node]] = {}
        for node in seen:
            by_window.setdefault(node[3], []).append(node)
        self.sortings: dict[Sorting, list[tuple[int, int, list[Node]]]] = {}
        """(PARTITION BY, ORDER BY) -> its windows' frame offsets, each with its aggregates."""
        for name, aggregates in by_window.items():
            window = query.windows[name]
            self.sortings.setdefault((window.partition_by, window.order_by), []).append(
                (window.lower, window.upper, aggregates)
            )
        self.listed = {
            sorting: {node[2] for _, _, aggregates in windows for node in aggregates}
            for sorting, windows in self.sortings.items()
        }
        """The aggregate arguments each sort reads."""

    def evaluate(self, columns: Columns, rows: np.ndarray) -> Columns:
        """The outputs for the input rows ``rows`` (indices), each window over all rows."""
        with np.errstate(divide="ignore", invalid="ignore"):
            everything = _Context(columns, {})
            arguments = {
                node: _Argument(argument(everything)) for node, argument in self.arguments.items()
            }
        values: list[Row] = [
            {name: float(column[row]) for name, column in columns.items()} for row in rows
        ]
        for (keys, order_by), windows in self.sortings.items():
            order = _order_values(columns, order_by)
            partition_keys = _partition_keys(columns, keys)
            listed = [
                (node, argument.values)
                for node, argument in arguments.items()
                if argument.values is not None and node in self.listed[(keys, order_by)]
            ]
            for row, row_values in zip(rows, values, strict=True):
                members = _members(row, partition_keys, order)
                times = order[members].tolist()
                lists = {node: column[members].tolist() for node, column in listed}
                at = int(order[row])
                for lower, upper, aggregates in windows:
                    start = bisect_left(times, at + lower)
                    end = bisect_right(times, at + upper)
                    for node in aggregates:
                        argument = arguments[node[2]]
                        row_values[node] = (
                            _constant_aggregate(node[1], argument.constant, end - start)
                            if argument.constant is not None
                            else _aggregate(node[1], lists[node[2]][start:end], argument.nulls)
                        )
        results = np.array(
            [[output(row_values) for output in self.outputs] for row_values in values],
            dtype=np.float64,
        ).reshape(len(values), len(self.outputs))
        return {name: results[:, position] for position, name in enumerate(self.names)}


def _members(row: int, keys: list[np.ndarray], order: np.ndarray) -> np.ndarray:
    """The input rows in ``row``'s partition, by ascending order value (ties kept in input
    order, as the NumPy evaluator's stable sort keeps them)."""
    mask = keys[0] == keys[0][row]
    for key in keys[1:]:
        mask &= key == key[row]
    members = np.flatnonzero(mask)
    return members[np.argsort(order[members], kind="stable")]
