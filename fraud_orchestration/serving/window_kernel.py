"""The row evaluator's compiled parts (Numba): the windows and their aggregates, and SQL's
scalar rules for the kernels :mod:`serving.row_sql` generates from the text.

:func:`window_aggregates`: per output row, for each (PARTITION BY, ORDER BY) of the query,
the rows of its partition sorted by the order value (ties in input order), each window's frame
as two binary searches, and each aggregate over the frame.

The answers are the vectorised evaluator's bit for bit: NULL is NaN and aggregates skip it,
and sums add in the order ``np.add.reduceat`` adds (:func:`_numpy_sum`), so a transaction's
features never depend on the evaluator its batch ran on (``tests/serving/test_window_sql.py``).

Compiled on first use and cached on disk beside this file (``cache=True``); the service
compiles it in its warm-up, before it takes a request.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fraud_orchestration.serving.window_sql import DivisionByZero

NAN = math.nan
_COUNT, _SUM, _AVG, _MAX, _MIN = range(5)
FUNCTIONS = {"COUNT": _COUNT, "SUM": _SUM, "AVG": _AVG, "MAX": _MAX, "MIN": _MIN}


@njit(cache=True, nogil=True)
def _block_sum(values: np.ndarray, start: int, count: int) -> float:
    """NumPy's ``pairwise_sum`` of at most 128 values: sequential below 8 values, else 8
    interleaved partial sums."""
    if count < 8:
        total = 0.0
        for i in range(start, start + count):
            total += values[i]
        return total
    whole = count - count % 8
    p0, p1, p2, p3 = values[start], values[start + 1], values[start + 2], values[start + 3]
    p4, p5, p6, p7 = values[start + 4], values[start + 5], values[start + 6], values[start + 7]
    for i in range(start + 8, start + whole, 8):
        p0 += values[i]
        p1 += values[i + 1]
        p2 += values[i + 2]
        p3 += values[i + 3]
        p4 += values[i + 4]
        p5 += values[i + 5]
        p6 += values[i + 6]
        p7 += values[i + 7]
    total = ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7))
    for i in range(start + whole, start + count):
        total += values[i]
    return total


@njit(cache=True, nogil=True)
def _pairwise_sum(values: np.ndarray, start: int, count: int) -> float:
    """NumPy's ``pairwise_sum`` of ``values[start:start + count]``: above 128 values, the
    sum of the two halves' (the first a multiple of 8 long). NumPy recurses; this walks the
    same tree with explicit stacks (Numba cannot cache a recursive function)."""
    if count <= 128:
        return _block_sum(values, start, count)
    starts = np.empty(128, dtype=np.int64)
    counts = np.empty(128, dtype=np.int64)
    halves_done = np.empty(128, dtype=np.bool_)
    sums = np.empty(128)
    starts[0], counts[0], halves_done[0] = start, count, False
    pending, summed = 1, 0
    while pending:
        pending -= 1
        at, size = starts[pending], counts[pending]
        if size <= 128:
            sums[summed] = _block_sum(values, at, size)
            summed += 1
        elif halves_done[pending]:
            summed -= 1
            sums[summed - 1] = sums[summed - 1] + sums[summed]
        else:
            half = size // 2
            half -= half % 8
            halves_done[pending] = True  # back to it once both halves are summed
            starts[pending + 1], counts[pending + 1], halves_done[pending + 1] = (
                at + half,
                size - half,
                False,
            )
            starts[pending + 2], counts[pending + 2], halves_done[pending + 2] = at, half, False
            pending += 3
    return sums[0]


@njit(cache=True, nogil=True)
def _numpy_sum(values: np.ndarray, count: int) -> float:
    """The first value plus the rest summed pairwise: ``np.add.reduceat``'s order."""
    return values[0] + _pairwise_sum(values, 1, count - 1)


@njit(cache=True, nogil=True)
def _aggregate(function: int, values: np.ndarray, frame: np.ndarray, scratch: np.ndarray) -> float:
    """``function`` over ``values[frame]``, skipping NULLs (NaN); NULL over no value, but
    ``COUNT`` is 0."""
    present = 0
    if function in (_MAX, _MIN):
        best = math.nan
        for i in frame:
            v = values[i]
            if v == v:
                if present == 0 or (v > best if function == _MAX else v < best):
                    best = v
                present += 1
        return best
    for k in range(frame.shape[0]):
        v = values[frame[k]]
        if v == v:
            present += 1
            scratch[k] = v
        else:
            scratch[k] = 0.0
    if function == _COUNT:
        return float(present)
    if present == 0:
        return math.nan
    total = _numpy_sum(scratch, frame.shape[0])
    return total if function == _SUM else total / present


@njit(cache=True, nogil=True)
def _constant_aggregate(function: int, value: float, size: int) -> float:
    """``function`` of a constant over ``size`` rows (``COUNT(*)`` counts 1s)."""
    if function == _COUNT:
        return 0.0 if value != value else float(size)
    if size == 0 or value != value:
        return math.nan
    return size * value if function == _SUM else value


@njit(cache=True, nogil=True)
def window_aggregates(
    rows: np.ndarray,
    keys: np.ndarray,
    order: np.ndarray,
    window_sorting: np.ndarray,
    lowers: np.ndarray,
    uppers: np.ndarray,
    aggregate_window: np.ndarray,
    aggregate_function: np.ndarray,
    aggregate_argument: np.ndarray,
    arguments: np.ndarray,
    constant: np.ndarray,
) -> np.ndarray:
    """Every aggregate for every row of ``rows`` (``float64[len(rows), aggregates]``).

    ``keys[s, k]`` and ``order[s]`` are sorting ``s``'s PARTITION BY columns (unused ones
    zero) and ORDER BY values (int64); window ``w`` belongs to sorting ``window_sorting[w]``
    and frames ``[order + lowers[w], order + uppers[w]]``; aggregate ``a`` is function
    ``aggregate_function[a]`` (:data:`FUNCTIONS`) of argument ``aggregate_argument[a]`` over
    window ``aggregate_window[a]``. An argument is a row of ``arguments`` (NULL is NaN) or,
    where ``constant`` is true, the constant in its first cell.
    """
    n = order.shape[1]
    result = np.empty((rows.shape[0], aggregate_window.shape[0]))
    members = np.empty(n, dtype=np.int64)
    scratch = np.empty(n)
    for r in range(rows.shape[0]):
        row = rows[r]
        for s in range(keys.shape[0]):
            count = 0
            for i in range(n):
                same = True
                for k in range(keys.shape[1]):
                    if keys[s, k, i] != keys[s, k, row]:
                        same = False
                        break
                if same:
                    members[count] = i
                    count += 1
            times = order[s][members[:count]]
            by_time = np.argsort(times, kind="mergesort")  # stable: ties in input order
            partition = members[:count][by_time]
            times = times[by_time]
            at = order[s, row]
            for w in range(window_sorting.shape[0]):
                if window_sorting[w] != s:
                    continue
                start = np.searchsorted(times, at + lowers[w], side="left")
                end = np.searchsorted(times, at + uppers[w], side="right")
                frame = partition[start:end]
                for a in range(aggregate_window.shape[0]):
                    if aggregate_window[a] != w:
                        continue
                    g = aggregate_argument[a]
                    if constant[g]:
                        result[r, a] = _constant_aggregate(
                            aggregate_function[a], arguments[g, 0], end - start
                        )
                    else:
                        result[r, a] = _aggregate(
                            aggregate_function[a], arguments[g], frame, scratch
                        )
    return result


# --------------------------------------------------------------------------- scalars
# SQL's rules where Python's differ, for the generated kernels (``serving.row_sql``).


@njit(cache=True, nogil=True)
def divide(x: float, y: float, remainder: bool) -> float:
    """``x / y`` or, with ``remainder``, ``x % y`` (truncated toward zero, as SQL's is):
    NULL with a NULL operand; a value divided by zero is an error."""
    if y == 0.0:
        if x != x:
            return math.nan
        raise DivisionByZero("division by zero")
    return np.fmod(x, y) if remainder else x / y


@njit(cache=True, nogil=True)
def logic(x: float, y: float, decisive: float) -> float:
    """Three-valued AND (``decisive`` 0.0: FALSE decides) or OR (1.0: TRUE decides): else
    NULL unless both are the other truth value."""
    if x == decisive or y == decisive:
        return decisive
    if x == 1.0 - decisive and y == 1.0 - decisive:
        return 1.0 - decisive
    return math.nan


@njit(cache=True, nogil=True)
def round_half_away(value: float) -> float:
    """ROUND(x) as DuckDB and Spark round: half away from zero; NULL stays NULL.
    ``x - trunc(x)`` is exact, so 0.49999999999999994 rounds to 0 (``floor(x + 0.5)`` gives 1)."""
    if not math.isfinite(value):
        return value
    whole = np.trunc(value)
    if abs(value - whole) >= 0.5:
        whole += math.copysign(1.0, value)
    return whole


@njit(cache=True, nogil=True)
def floor(value: float) -> float:
    if not math.isfinite(value):
        return value
    return float(math.floor(value))
