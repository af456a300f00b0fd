"""THE feature SQL compiled into a vectorised NumPy evaluator, for the scoring service.

A SQL engine spends milliseconds on a query however few rows it reads (SQLite ~1-2 ms for one
transaction's history, DuckDB ~10 ms), which a 10 ms p99 cannot afford. This module parses the
text of ``transaction_features.sql`` -- not a hand-written copy of its logic -- into an
expression tree once, at start-up, and evaluates it over a small frame with NumPy:

* every window (``PARTITION BY`` columns, ``ORDER BY`` one numeric column, a ``RANGE`` frame of
  constant offsets) becomes a sort of the frame by (partition, order value), shared by the
  windows with the same ``PARTITION BY`` and ``ORDER BY``; two ``searchsorted`` calls give
  every output row's frame bounds in all the windows of one sort;
* every aggregate (``COUNT(*)``, ``COUNT``, ``SUM``, ``AVG``, ``MIN``, ``MAX`` of any row
  expression) is one ``reduceat`` over its argument sorted the window's way (counts: the
  difference of two cumulative counts), computed once however often the text repeats it;
* scalar expressions (arithmetic, comparisons, ``CASE``, ``COALESCE``, ``NULLIF``, ``CAST``,
  ``FLOOR``, ``ROUND``) run on float64 arrays with NaN standing for NULL, with SQL's NULL rules
  (comparisons with NULL are NULL, ``x / 0`` is an error, ``%`` truncates like ``fmod``).

The dialect is the small one the feature file is written in (the one DuckDB and Spark share).
Anything else -- another function, a ``ROWS`` frame, a subquery -- is refused with
:class:`UnsupportedSQL` when the text is compiled, so a new feature the evaluator cannot run
is noticed at start-up (the service then runs the SQL on SQLite or DuckDB and says so); and
the service uses the evaluator only after it reproduced DuckDB's features on a canary frame.
Whole numbers up to 2**53 (epoch seconds, ids, counts) are exact in float64.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Columns = dict[str, np.ndarray]
"""Column name -> float64 array (NaN = NULL)."""


class UnsupportedSQL(ValueError):
    """The text uses SQL this evaluator does not implement."""


class DivisionByZero(ArithmeticError):
    """``x / 0`` or ``x % 0`` with x not NULL. Spark 4 (ANSI) raises, DuckDB 2 raises or
    answers inf depending on the plan: no value would be the reference's, so none is given."""


# --------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"\s+|--[^\n]*"  # skipped
    r"|(?P<number>\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><>|!=|>=|<=|[-+*/%(),=<>])"
)
_KEYWORDS = {
    "SELECT", "FROM", "WINDOW", "AS", "PARTITION", "BY", "ORDER", "RANGE", "BETWEEN", "AND",
    "OR", "NOT", "PRECEDING", "FOLLOWING", "CURRENT", "ROW", "OVER", "CASE", "WHEN", "THEN",
    "ELSE", "END", "CAST", "NULL",
}  # fmt: skip


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise UnsupportedSQL(f"unexpected character {text[position]!r} at {position}")
        position = match.end()
        kind = match.lastgroup
        if kind is None:
            continue
        value = match.group(kind)
        if kind == "name" and value.upper() in _KEYWORDS:
            tokens.append(("keyword", value.upper()))
        elif kind == "name":
            tokens.append(("name", value.lower()))
        else:
            tokens.append((kind, value))
    tokens.append(("end", ""))
    return tokens


# --------------------------------------------------------------------------- tree

Node = tuple  # ("column", name) | ("number", v) | ("null",) | ("op", sym, a, b) | ...


@dataclass(frozen=True)
class Window:
    partition_by: tuple[str, ...]
    order_by: str
    lower: int
    """The frame's first order value relative to the current row's (e.g. -86399)."""
    upper: int


@dataclass
class Query:
    outputs: list[tuple[str, Node]]
    windows: dict[str, Window] = field(default_factory=dict)


_AGGREGATES = {"COUNT", "SUM", "AVG", "MIN", "MAX"}
_FUNCTIONS = {"COALESCE": (1, 99), "NULLIF": (2, 2), "FLOOR": (1, 1), "ROUND": (1, 1)}
_COMPARISONS = {"=", "<>", "!=", "<", "<=", ">", ">="}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.index]

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, value: str) -> bool:
        if self.peek()[0] in ("keyword", "op") and self.peek()[1] == value:
            self.index += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.accept(value):
            raise UnsupportedSQL(f"expected {value!r}, found {self.peek()[1]!r}")

    def name(self) -> str:
        kind, value = self.take()
        if kind != "name":
            raise UnsupportedSQL(f"expected a name, found {value!r}")
        return value

    def query(self) -> Query:
        self.expect("SELECT")
        outputs = [self.output()]
        while self.accept(","):
            outputs.append(self.output())
        self.expect("FROM")
        self.name()
        query = Query(outputs)
        if self.accept("WINDOW"):
            while True:
                window_name = self.name()
                self.expect("AS")
                query.windows[window_name] = self.window()
                if not self.accept(","):
                    break
        if self.peek()[0] != "end":
            raise UnsupportedSQL(f"unsupported clause at {self.peek()[1]!r}")
        return query

    def output(self) -> tuple[str, Node]:
        node = self.expression()
        if self.accept("AS"):
            return self.name(), node
        if node[0] == "column":
            return node[1], node
        raise UnsupportedSQL("every computed column needs an AS name")

    def window(self) -> Window:
        self.expect("(")
        self.expect("PARTITION")
        self.expect("BY")
        keys = [self.name()]
        while self.accept(","):
            keys.append(self.name())
        self.expect("ORDER")
        self.expect("BY")
        order = self.name()
        if not self.accept("RANGE"):
            raise UnsupportedSQL(f"only RANGE frames are supported, found {self.peek()[1]!r}")
        self.expect("BETWEEN")
        lower = self.bound()
        self.expect("AND")
        upper = self.bound()
        self.expect(")")
        if lower > upper:
            raise UnsupportedSQL("a window frame ends before it starts")
        return Window(tuple(keys), order, lower, upper)

    def bound(self) -> int:
        if self.accept("CURRENT"):
            self.expect("ROW")
            return 0
        kind, value = self.take()
        if kind != "number" or "." in value:
            raise UnsupportedSQL(f"a frame bound must be a whole number, found {value!r}")
        if self.accept("PRECEDING"):
            return -int(value)
        self.expect("FOLLOWING")
        return int(value)

    # precedence climbing: OR < AND < NOT < comparison < + - < * / % < unary -
    def expression(self) -> Node:
        node = self.conjunction()
        while self.accept("OR"):
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.negation()
        while self.accept("AND"):
            node = ("and", node, self.negation())
        return node

    def negation(self) -> Node:
        if self.accept("NOT"):
            return ("not", self.negation())
        return self.comparison()

    def comparison(self) -> Node:
        node = self.additive()
        if self.peek()[0] == "op" and self.peek()[1] in _COMPARISONS:
            symbol = self.take()[1]
            node = ("compare", "<>" if symbol == "!=" else symbol, node, self.additive())
        return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while self.peek() in (("op", "+"), ("op", "-")):
            node = ("op", self.take()[1], node, self.multiplicative())
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while self.peek() in (("op", "*"), ("op", "/"), ("op", "%")):
            node = ("op", self.take()[1], node, self.unary())
        return node

    def unary(self) -> Node:
        if self.accept("-"):
            return ("op", "-", ("number", 0.0), self.unary())
        return self.primary()

    def primary(self) -> Node:
        kind, value = self.take()
        if kind == "number":
            return ("number", float(value))
        if (kind, value) == ("keyword", "NULL"):
            return ("null",)
        if (kind, value) == ("op", "("):
            node = self.expression()
            self.expect(")")
            return node
        if (kind, value) == ("keyword", "CAST"):
            self.expect("(")
            node = self.expression()
            self.expect("AS")
            target = self.name().upper()
            self.expect(")")
            if target in ("INT", "INTEGER", "BIGINT"):
                return ("cast_int", node)
            if target in ("DOUBLE", "FLOAT", "REAL"):
                return node
            raise UnsupportedSQL(f"CAST to {target} is not supported")
        if (kind, value) == ("keyword", "CASE"):
            return self.case()
        if kind == "name" and self.peek() == ("op", "("):
            return self.call(value.upper())
        if kind == "name":
            return ("column", value)
        raise UnsupportedSQL(f"unexpected {value!r}")

    def case(self) -> Node:
        branches = []
        while self.accept("WHEN"):
            condition = self.expression()
            self.expect("THEN")
            branches.append((condition, self.expression()))
        if not branches:
            raise UnsupportedSQL("only searched CASE WHEN ... is supported")
        otherwise = self.expression() if self.accept("ELSE") else ("null",)
        self.expect("END")
        return ("case", tuple(branches), otherwise)

    def call(self, function: str) -> Node:
        self.expect("(")
        if function in _AGGREGATES:
            if function == "COUNT" and self.accept("*"):
                argument: Node = ("number", 1.0)
            else:
                argument = self.expression()
            self.expect(")")
            if not self.accept("OVER"):
                raise UnsupportedSQL(f"{function} must be a window aggregate (OVER a window)")
            if self.peek() == ("op", "("):
                raise UnsupportedSQL("windows must be named in the WINDOW clause")
            return ("aggregate", function, argument, self.name())
        if function not in _FUNCTIONS:
            raise UnsupportedSQL(f"function {function} is not supported")
        arguments = [self.expression()]
        while self.accept(","):
            arguments.append(self.expression())
        self.expect(")")
        low, high = _FUNCTIONS[function]
        if not low <= len(arguments) <= high:
            raise UnsupportedSQL(f"{function} takes {low}-{high} arguments")
        if function == "ROUND":
            return ("round", arguments[0])
        return ("call", function, tuple(arguments))


def parse(text: str) -> Query:
    """The query's output columns and named windows; :class:`UnsupportedSQL` otherwise."""
    query = _Parser(text).query()
    for _, node in query.outputs:
        for aggregate in _aggregates(node):
            if aggregate[3] not in query.windows:
                raise UnsupportedSQL(f"window {aggregate[3]!r} is not defined")
    return query


def _aggregates(node: Node) -> list[Node]:
    """The aggregate nodes in ``node`` (a node is a tuple led by its kind; arguments of
    calls and CASE branches are tuples of nodes)."""
    if node and node[0] == "aggregate":
        return [node]
    parts = node[1:] if node and isinstance(node[0], str) else node
    found: list[Node] = []
    for part in parts:
        if isinstance(part, tuple):
            found.extend(_aggregates(part))
    return found


# --------------------------------------------------------------------------- evaluation


Value = np.ndarray | float
Compiled = Callable[["_Context"], Value]
"""A node compiled once into a closure; a constant may stay a Python float (broadcasts)."""

_COMPARE = {
    "=": np.equal,
    "<>": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def _nan_where(mask: Any, values: Value) -> np.ndarray:
    return np.where(mask, np.nan, values)


def _compare(symbol: str, a: Value, b: Value) -> np.ndarray:
    result = _COMPARE[symbol](a, b).astype(np.float64)
    return _nan_where(np.isnan(a) | np.isnan(b), result)


def _arithmetic(symbol: str, a: Value, b: Value) -> Value:
    if symbol == "+":
        return a + b
    if symbol == "-":
        return a - b
    if symbol == "*":
        return a * b
    zero = np.equal(b, 0)
    if np.any(zero) and np.any(zero & ~np.isnan(a)):  # zeros are rare: one test usually
        raise DivisionByZero(f"division by zero in {symbol}")
    if symbol == "/":
        return np.divide(a, b)
    return np.fmod(a, b)  # SQL's % truncates toward zero


def _three_valued(kind: str, a: Value, b: Value) -> np.ndarray:
    true_a, true_b = np.equal(a, 1.0), np.equal(b, 1.0)
    false_a, false_b = np.equal(a, 0.0), np.equal(b, 0.0)
    if kind == "and":
        return np.where(false_a | false_b, 0.0, np.where(true_a & true_b, 1.0, np.nan))
    return np.where(true_a | true_b, 1.0, np.where(false_a & false_b, 0.0, np.nan))


@dataclass
class _Context:
    """What compiled closures read: the columns and the aggregates of the rows evaluated."""

    columns: Columns
    aggregates: dict[Node, np.ndarray]


def _compile(node: Node) -> Compiled:
    """``node`` as a closure over a :class:`_Context` (compiled once, called per request)."""
    kind = node[0]
    if kind == "column":
        name = node[1]

        def column(context: _Context) -> Value:
            try:
                return context.columns[name]
            except KeyError:
                raise UnsupportedSQL(f"unknown column {name!r}") from None

        return column
    if kind in ("number", "null"):
        constant = node[1] if kind == "number" else np.nan
        return lambda _: constant
    if kind == "aggregate":
        return lambda context: context.aggregates[node]
    if kind == "op":
        symbol, a, b = node[1], _compile(node[2]), _compile(node[3])
        return lambda context: _arithmetic(symbol, a(context), b(context))
    if kind == "compare":
        symbol, a, b = node[1], _compile(node[2]), _compile(node[3])
        return lambda context: _compare(symbol, a(context), b(context))
    if kind == "cast_int":  # DuckDB 2 rounds half to even (Spark truncates: the feature SQL
        value = _compile(node[1])  # casts only whole numbers and truth values)
        return lambda context: np.rint(value(context))
    if kind == "round":  # half away from zero, as DuckDB and Spark round
        value = _compile(node[1])

        def round_half_away(context: _Context) -> Value:
            values = value(context)
            whole = np.trunc(values)
            return whole + np.copysign(np.abs(values - whole) >= 0.5, values)

        return round_half_away
    if kind == "case":
        branches = [(_compile(condition), _compile(value)) for condition, value in node[1]]
        otherwise = _compile(node[2])

        def case(context: _Context) -> Value:
            result = otherwise(context)
            for condition, value in reversed(branches):  # the first true WHEN wins
                result = np.where(np.equal(condition(context), 1.0), value(context), result)
            return result

        return case
    if kind == "call":
        return _compile_call(node[1], [_compile(argument) for argument in node[2]])
    if kind in ("and", "or"):
        a, b = _compile(node[1]), _compile(node[2])
        return lambda context: _three_valued(kind, a(context), b(context))
    if kind == "not":
        value = _compile(node[1])

        def negate(context: _Context) -> Value:
            values = value(context)
            return _nan_where(np.isnan(values), np.not_equal(values, 1.0).astype(np.float64))

        return negate
    raise UnsupportedSQL(f"cannot evaluate {kind}")


def _compile_call(function: str, arguments: list[Compiled]) -> Compiled:
    if function == "COALESCE":

        def coalesce(context: _Context) -> Value:
            result = arguments[-1](context)
            for argument in reversed(arguments[:-1]):
                values = argument(context)
                result = np.where(np.isnan(values), result, values)
            return result

        return coalesce
    if function == "NULLIF":
        a, b = arguments

        def nullif(context: _Context) -> Value:
            values = a(context)
            return _nan_where(np.equal(values, b(context)), values)

        return nullif
    value = arguments[0]  # FLOOR
    return lambda context: np.floor(value(context))


# --------------------------------------------------------------------------- windows


class _Frames:
    """Where each output row's frame lies in the input sorted by (partition, order value):
    ``sorted[starts[i]:ends[i]]``, possibly empty."""

    def __init__(self, starts: np.ndarray, ends: np.ndarray) -> None:
        self.starts = starts
        self.ends = ends
        self.sizes = (ends - starts).astype(np.float64)

    @functools.cached_property
    def empty(self) -> np.ndarray:
        return self.ends == self.starts

    @functools.cached_property
    def indices(self) -> np.ndarray:
        """``reduceat`` indices: (start, end) pairs; the values get one padding element,
        so that an end equal to their length is a valid index."""
        indices = np.empty(2 * len(self.starts), dtype=np.int64)
        indices[0::2] = self.starts
        indices[1::2] = self.ends
        return indices

    def reduce(self, ufunc: np.ufunc, padded: np.ndarray) -> np.ndarray:
        """``ufunc.reduce(sorted values[start:end])`` per output row, from the values with
        their padding element (:meth:`_SortedArgument.padded`). An empty frame's result is
        meaningless: the caller masks it (its count is 0)."""
        return ufunc.reduceat(padded, self.indices)[0::2]


class _SortedArgument:
    """An aggregate's argument in a partitioning's order, shared by every aggregate of it:
    its non-NULL values counted cumulatively (a frame's count is a difference of two)."""

    def __init__(self, values: np.ndarray, order: np.ndarray) -> None:
        self.values = values[order]
        present = ~np.isnan(self.values)
        self.all_present = bool(present.all())
        self.present = present
        self.cumulative = np.concatenate(((0,), np.cumsum(present)))
        self._padded: dict[float, np.ndarray] = {}

    def counts(self, frames: _Frames) -> np.ndarray:
        if self.all_present:
            return frames.sizes
        return (self.cumulative[frames.ends] - self.cumulative[frames.starts]).astype(np.float64)

    def padded(self, fill: float) -> np.ndarray:
        """The values with NULL replaced by ``fill`` (the reduction's identity) and one
        ``fill`` appended (``reduceat``'s padding), built once per identity."""
        if fill not in self._padded:
            values = self.values if self.all_present else np.where(self.present, self.values, fill)
            self._padded[fill] = np.concatenate((values, (fill,)))
        return self._padded[fill]


class _Partitioning:
    """The input sorted by (partition, order value) once, for every window sharing both.

    Each row gets one int64 sort key, ``partition * span + (value - low)``, where ``span``
    exceeds the order values' range plus the widest frame: a frame's bounds, looked up with
    ``searchsorted``, can then never reach into a neighbouring partition.
    """

    def __init__(self, key_values: list[np.ndarray], values: np.ndarray, reach: int) -> None:
        self.low = int(values.min()) - reach - 1
        self.span = int(values.max()) + reach + 1 - self.low + 1
        partition, partitions = _partition_codes(key_values, len(values), dense=False)
        if self.span * partitions >= 1 << 62:
            partition, partitions = _partition_codes(key_values, len(values), dense=True)
        if self.span * partitions >= 1 << 62:
            raise UnsupportedSQL("order values span too wide for one sort key")
        combined = partition * self.span + (values - self.low)
        self.order = np.argsort(combined, kind="stable")
        self.sorted_keys = combined[self.order]
        self.partition = partition
        self.values = values

    def frames(self, rows: np.ndarray, windows: _WindowGroup) -> dict[str, _Frames]:
        """Frame bounds of every window of the group for the output rows (indices ``rows``
        into the input): two ``searchsorted`` calls for all of them."""
        at = self.partition[rows] * self.span + (self.values[rows] - self.low)
        starts = np.searchsorted(self.sorted_keys, at + windows.lowers, side="left")
        ends = np.searchsorted(self.sorted_keys, at + windows.uppers, side="right")
        return {name: _Frames(starts[i], ends[i]) for i, name in enumerate(windows.names)}


@dataclass(frozen=True)
class _WindowGroup:
    """The windows sharing a partitioning: their names and frame offsets as columns."""

    names: tuple[str, ...]
    lowers: np.ndarray
    uppers: np.ndarray

    @classmethod
    def of(cls, windows: dict[str, Window]) -> _WindowGroup:
        def column(offsets: list[int]) -> np.ndarray:
            return np.array(offsets, dtype=np.int64).reshape(-1, 1)

        return cls(
            tuple(windows),
            column([window.lower for window in windows.values()]),
            column([window.upper for window in windows.values()]),
        )


def _order_values(columns: Columns, name: str) -> np.ndarray:
    """An ORDER BY column as int64: RANGE offsets are whole seconds here."""
    values = columns[name]
    if np.isnan(values).any():
        raise UnsupportedSQL("NULL partition keys or order values are not supported")
    whole = values.astype(np.int64)
    if not np.array_equal(whole, values):
        raise UnsupportedSQL("RANGE frames need whole-number order values")
    return whole


def _partition_keys(columns: Columns, names: tuple[str, ...]) -> list[np.ndarray]:
    keys = [columns[name] for name in names]
    if any(np.isnan(key).any() for key in keys):
        raise UnsupportedSQL("NULL partition keys or order values are not supported")
    return keys


def _partition_codes(keys: list[np.ndarray], rows: int, dense: bool) -> tuple[np.ndarray, int]:
    """Each row's partition as one integer (mixed radix, a digit per key) and how many codes
    there can be. Whole-number keys (ids) become their offset from the smallest, which needs
    no sort; ``dense`` (or keys that are not whole numbers) uses each key's dense rank, the
    smallest codes, for when offsets would overflow the sort key."""
    codes = np.zeros(rows, dtype=np.int64)
    size = 1
    for key in keys:
        digit, radix = None, 0
        if not dense and len(key):
            offset = key - key.min()
            digit = offset.astype(np.int64)
            radix = int(digit.max()) + 1
            if not np.array_equal(digit, offset):
                digit = None
        if digit is None:
            distinct, rank = np.unique(key, return_inverse=True)
            digit, radix = rank.reshape(-1), max(len(distinct), 1)
        codes = codes * radix + digit
        size *= radix
    return codes, size


def _aggregate(function: str, argument: _SortedArgument, frames: _Frames) -> np.ndarray:
    """``function`` of ``argument`` over each output row's frame; SQL's NULL rules."""
    counts = argument.counts(frames)
    if function == "COUNT":
        return counts
    if function in ("SUM", "AVG"):
        sums = frames.reduce(np.add, argument.padded(0.0))
        if function == "AVG":
            sums = sums / counts
        return _nan_where(counts == 0, sums)
    fill = -np.inf if function == "MAX" else np.inf
    ufunc = np.maximum if function == "MAX" else np.minimum
    return _nan_where(counts == 0, frames.reduce(ufunc, argument.padded(fill)))


def _constant_aggregate(function: str, value: float, frames: _Frames) -> np.ndarray:
    """``function`` of a constant (``COUNT(*)`` counts the constant 1) over each frame."""
    if np.isnan(value):
        return (
            np.zeros_like(frames.sizes)
            if function == "COUNT"
            else np.full_like(frames.sizes, np.nan)
        )
    if function == "COUNT":
        return frames.sizes
    per_frame = frames.sizes * value if function == "SUM" else np.full_like(frames.sizes, value)
    return _nan_where(frames.empty, per_frame)


# --------------------------------------------------------------------------- compiled query


def parse_outputs(
    text: str, outputs: Sequence[str] | None
) -> tuple[Query, list[tuple[str, Node]], list[Node]]:
    """The parsed text, the ``outputs`` asked for (all when None) with their expressions, and
    the distinct aggregates those use, in order of appearance."""
    query = parse(text)
    available = dict(query.outputs)
    wanted = list(outputs) if outputs is not None else list(available)
    missing = [name for name in wanted if name not in available]
    if missing:
        raise UnsupportedSQL(f"the text does not define {missing}")
    seen: dict[Node, None] = {}
    for name in wanted:
        for aggregate in _aggregates(available[name]):
            if _aggregates(aggregate[2]):
                raise UnsupportedSQL("aggregates of aggregates are not supported")
            seen[aggregate] = None
    return query, [(name, available[name]) for name in wanted], list(seen)


class CompiledQuery:
    """The parsed text, ready to evaluate; ``outputs`` limits the work to those columns."""

    def __init__(self, text: str, outputs: Sequence[str] | None = None) -> None:
        query, selected, seen = parse_outputs(text, outputs)
        self.windows = query.windows
        self.outputs = [(name, _compile(node)) for name, node in selected]
        self.aggregates = [(node, _compile(node[2])) for node in seen]
        used = {node[3] for node in seen}
        by_sorting: dict[tuple[tuple[str, ...], str], dict[str, Window]] = {}
        for name, window in self.windows.items():
            if name in used:
                sorting = (window.partition_by, window.order_by)
                by_sorting.setdefault(sorting, {})[name] = window
        self.groups = {sorting: _WindowGroup.of(group) for sorting, group in by_sorting.items()}
        """The windows the outputs use, by the sort they share."""
        self.reach = max(
            (max(-window.lower, window.upper) for window in self.windows.values()), default=0
        )

    def evaluate(self, columns: Columns, rows: np.ndarray) -> Columns:
        """The outputs for the input rows ``rows`` (indices), each window over all rows.
        NumPy's warnings are off: NaN is NULL here, and 0 / 0 (AVG of an empty frame, then
        replaced by NULL) is expected."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._evaluate(columns, rows)

    def _evaluate(self, columns: Columns, rows: np.ndarray) -> Columns:
        partitionings: dict[tuple, _Partitioning] = {}
        frames: dict[str, _Frames] = {}
        order_values: dict[str, np.ndarray] = {}
        for sorting, group in self.groups.items():
            keys, order_by = sorting
            if order_by not in order_values:
                order_values[order_by] = _order_values(columns, order_by)
            partitioning = _Partitioning(
                _partition_keys(columns, keys), order_values[order_by], self.reach
            )
            partitionings[sorting] = partitioning
            frames.update(partitioning.frames(rows, group))
        arguments: dict[Node, Value] = {}
        sorted_arguments: dict[tuple, _SortedArgument] = {}
        everything = _Context(columns, {})
        aggregates: dict[Node, np.ndarray] = {}
        for node, argument in self.aggregates:
            function, argument_node, window_name = node[1], node[2], node[3]
            window = self.windows[window_name]
            sorting = (window.partition_by, window.order_by)
            if argument_node not in arguments:
                arguments[argument_node] = argument(everything)
            values = arguments[argument_node]
            if np.ndim(values) == 0:
                constant = float(values)  # type: ignore[arg-type]
                aggregates[node] = _constant_aggregate(function, constant, frames[window_name])
                continue
            key = (argument_node, sorting)
            if key not in sorted_arguments:
                order = partitionings[sorting].order
                sorted_arguments[key] = _SortedArgument(np.asarray(values), order)
            aggregates[node] = _aggregate(function, sorted_arguments[key], frames[window_name])
        selected = _Context({name: column[rows] for name, column in columns.items()}, aggregates)
        results: Columns = {}
        for name, output in self.outputs:
            values = output(selected)
            if isinstance(values, np.ndarray) and values.shape == rows.shape:
                results[name] = values
            else:  # a constant
                results[name] = np.full(rows.shape, values, dtype=np.float64)
        return results
