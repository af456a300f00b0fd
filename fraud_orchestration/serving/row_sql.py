"""THE feature SQL evaluated one output row at a time, for small requests.

:mod:`serving.window_sql` evaluates the text with NumPy, a few hundred calls whatever the
number of rows: on the handful of transactions a single request or a small batch brings, each
call costs its fixed overhead, not its work. Here the same parsed text becomes Python source
(the subset Numba compiles) that runs per row: each aggregate argument over the frame's rows,
the windows' aggregates (:mod:`serving.window_kernel`: per output row, its partition sorted by
the ORDER BY value, a window's frame as two binary searches), then the outputs over the
requested rows. Compiled to machine code, per row it costs less than the NumPy evaluator's
fixed cost, so the service uses it for batches of up to ``row_max_rows`` transactions. In the
service the code runs cold (what ran between two batches has evicted it), and one compiled
loop is far less code than the interpreter's and NumPy's.

Same dialect, same answers bit for bit: the parser is :mod:`serving.window_sql`'s (text
outside the dialect is refused there), sums add in NumPy's order, NULL is NaN, and the
service uses this evaluator only after it reproduced DuckDB's features on the canary frame.
SQL's NULL rules are spelt out where Python's differ: a comparison with NULL is NULL,
``x / 0`` raises :class:`DivisionByZero`, aggregates skip NULL and are NULL over no value
(``COUNT`` is 0), CASE and COALESCE evaluate lazily.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from fraud_orchestration.serving import window_kernel
from fraud_orchestration.serving.window_kernel import FUNCTIONS
from fraud_orchestration.serving.window_sql import (
    Columns,
    Node,
    UnsupportedSQL,
    _order_values,
    _partition_keys,
    parse_outputs,
)
from fraud_orchestration.settings import kernel_directory

Sorting = tuple[tuple[str, ...], str]
"""A window's (PARTITION BY columns, ORDER BY column): its windows share each row's partition."""

# --------------------------------------------------------------------------- scalars

_COMPARE = {"=": "==", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_DECISIVE = {"and": "0.0", "or": "1.0"}  # FALSE decides AND, TRUE decides OR


class _Statements:
    """Python statements (Numba's subset) computing expressions one row at a time, a
    temporary per step. SQL's NULL is NaN; its rules are spelt out where Python's differ:
    a comparison with NULL is NULL, CASE and COALESCE evaluate lazily, as SQL does."""

    def __init__(self, read: Callable[[Node], str]) -> None:
        self.read = read  # the variable holding a column's or an aggregate's value
        self.lines: list[str] = []
        self.count = 0

    def value(self, node: Node, indent: int) -> str:
        """Emit the statements computing ``node``; the name (or literal) holding it."""
        kind = node[0]
        if kind in ("column", "aggregate"):
            return self.read(node)
        if kind == "number":
            return repr(float(node[1]))
        if kind == "null":
            return "NAN"
        if kind == "op":
            a, b = self.value(node[2], indent), self.value(node[3], indent)
            if node[1] in ("/", "%"):
                return self.emit(f"divide({a}, {b}, {node[1] == '%'})", indent)
            return self.emit(f"{a} {node[1]} {b}", indent)
        if kind == "compare":
            a, b = self.value(node[2], indent), self.value(node[3], indent)
            test = f"{a} {_COMPARE[node[1]]} {b}"
            return self.emit(
                f"NAN if {a} != {a} or {b} != {b} else (1.0 if {test} else 0.0)", indent
            )
        if kind in ("and", "or"):
            a, b = self.value(node[1], indent), self.value(node[2], indent)
            return self.emit(f"logic({a}, {b}, {_DECISIVE[kind]})", indent)
        if kind == "not":
            a = self.value(node[1], indent)
            return self.emit(f"{a} if {a} != {a} else (1.0 if {a} != 1.0 else 0.0)", indent)
        if kind == "cast_int":  # DuckDB 2 rounds half to even
            return self.emit(f"np.rint({self.value(node[1], indent)})", indent)
        if kind == "round":
            return self.emit(f"round_half_away({self.value(node[1], indent)})", indent)
        if kind == "case":
            return self.case(list(node[1]), node[2], indent)
        if kind == "call":
            return self.call(node[1], list(node[2]), indent)
        raise UnsupportedSQL(f"cannot evaluate {kind}")

    def case(self, branches: list[tuple[Node, Node]], otherwise: Node, indent: int) -> str:
        """The first WHEN whose condition is TRUE gives the value, else the ELSE."""
        result = self.temporary()
        for depth, (condition, value) in enumerate(branches):
            test = self.value(condition, indent + depth)
            self.line(f"if {test} == 1.0:", indent + depth)
            self.line(f"{result} = {self.value(value, indent + depth + 1)}", indent + depth + 1)
            self.line("else:", indent + depth)
        last = indent + len(branches)
        self.line(f"{result} = {self.value(otherwise, last)}", last)
        return result

    def call(self, function: str, arguments: list[Node], indent: int) -> str:
        if function == "COALESCE":  # the first argument that is not NULL
            result = self.temporary()
            self.line(f"{result} = {self.value(arguments[0], indent)}", indent)
            for depth, argument in enumerate(arguments[1:]):
                self.line(f"if {result} != {result}:", indent + depth)
                self.line(
                    f"{result} = {self.value(argument, indent + depth + 1)}", indent + depth + 1
                )
            return result
        if function == "NULLIF":
            a, b = (self.value(argument, indent) for argument in arguments)
            return self.emit(f"NAN if {a} == {b} else {a}", indent)
        return self.emit(f"floor({self.value(arguments[0], indent)})", indent)  # FLOOR

    def emit(self, expression: str, indent: int) -> str:
        name = self.temporary()
        self.line(f"{name} = {expression}", indent)
        return name

    def temporary(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def line(self, text: str, indent: int) -> None:
        self.lines.append("    " * indent + text)


def _columns_of(node: Any) -> set[str]:
    """The columns an expression reads (outside its aggregates, which are values here)."""
    if not isinstance(node, tuple) or not node:
        return set()
    if node[0] == "column":
        return {node[1]}
    if node[0] == "aggregate":
        return set()
    parts = node[1:] if isinstance(node[0], str) else node
    return set().union(*(_columns_of(part) for part in parts))


# --------------------------------------------------------------------------- query


class RowQuery:
    """The parsed text, evaluated row by row; the interface of
    :class:`~fraud_orchestration.serving.window_sql.CompiledQuery`.

    The text becomes one generated Python function (Numba's subset), compiled to machine
    code: each aggregate argument over the frame's rows, the windows' aggregates
    (:func:`~fraud_orchestration.serving.window_kernel.window_aggregates`), then the outputs
    over the requested rows. The source goes to a file named by its hash, so that Numba
    caches the machine code beside it (``settings.kernel_directory``).
    """

    def __init__(self, text: str, outputs: Sequence[str] | None = None) -> None:
        query, selected, seen = parse_outputs(text, outputs)
        self.names = [name for name, _ in selected]
        argument_nodes = list(dict.fromkeys(node[2] for node in seen))
        window_names = list(dict.fromkeys(node[3] for node in seen))
        windows = [query.windows[name] for name in window_names]
        self.sortings: list[Sorting] = list(
            dict.fromkeys((window.partition_by, window.order_by) for window in windows)
        )
        self.widest = max((len(keys) for keys, _ in self.sortings), default=0)
        self.plan = (
            np.array(
                [self.sortings.index((w.partition_by, w.order_by)) for w in windows],
                dtype=np.int64,
            ),
            np.array([w.lower for w in windows], dtype=np.int64),
            np.array([w.upper for w in windows], dtype=np.int64),
            np.array([window_names.index(node[3]) for node in seen], dtype=np.int64),
            np.array([FUNCTIONS[node[1]] for node in seen], dtype=np.int64),
            np.array([argument_nodes.index(node[2]) for node in seen], dtype=np.int64),
            np.array([node[0] in ("number", "null") for node in argument_nodes], dtype=np.bool_),
        )
        """The windows' sortings and frame offsets; the aggregates' windows, functions and
        arguments; which arguments are constants."""
        expressions = [*argument_nodes, *(node for _, node in selected)]
        self.columns = sorted(set().union(*(_columns_of(node) for node in expressions)))
        source = _source(self.columns, argument_nodes, seen, [node for _, node in selected])
        self.kernel = _load(source).evaluate

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
        unknown = [name for name in self.columns if name not in columns]
        if unknown:
            raise UnsupportedSQL(f"unknown column {unknown[0]!r}")
        values = np.empty((len(self.columns), size))
        for k, name in enumerate(self.columns):
            values[k] = columns[name]
        rows = np.asarray(rows, dtype=np.int64)
        results = self.kernel(values, rows, keys, order, *self.plan)
        return {name: results[:, position] for position, name in enumerate(self.names)}


def _source(
    columns: list[str], arguments: list[Node], aggregates: list[Node], outputs: list[Node]
) -> str:
    """The module text of the query's ``evaluate`` kernel."""
    position = {name: k for k, name in enumerate(columns)}
    index = {node: k for k, node in enumerate(aggregates)}

    def read(node: Node) -> str:
        return f"c{position[node[1]]}" if node[0] == "column" else f"a{index[node]}"

    loads = [f"c{k} = columns[{k}, i]" for k in range(len(columns))]
    per_argument = _Statements(read)
    for g, node in enumerate(arguments):
        if node[0] in ("number", "null"):
            continue
        per_argument.line(f"arguments[{g}, i] = {per_argument.value(node, 0)}", 0)
    constants = [
        f"    arguments[{g}, 0] = {_Statements(read).value(node, 0)}"
        for g, node in enumerate(arguments)
        if node[0] in ("number", "null")
    ]
    per_output = _Statements(read)
    per_output.count = per_argument.count
    for k, node in enumerate(outputs):
        per_output.line(f"out[r, {k}] = {per_output.value(node, 0)}", 0)
    body = [
        "@njit(cache=True, nogil=True)",
        "def evaluate(columns, rows, keys, order, window_sorting, lowers, uppers,",
        "             aggregate_window, aggregate_function, aggregate_argument, constant):",
        "    size = columns.shape[1]",
        f"    arguments = np.zeros(({len(arguments)}, max(size, 1)))",
        *constants,
        "    for i in range(size):",
        *(f"        {line}" for line in loads + per_argument.lines),
        "    aggregates = window_aggregates(rows, keys, order, window_sorting, lowers, uppers,",
        "                                   aggregate_window, aggregate_function,",
        "                                   aggregate_argument, arguments, constant)",
        f"    out = np.empty((rows.shape[0], {len(outputs)}))",
        "    for r in range(rows.shape[0]):",
        "        i = rows[r]",
        *(f"        {line}" for line in loads),
        *(f"        a{k} = aggregates[r, {k}]" for k in range(len(aggregates))),
        *(f"        {line}" for line in per_output.lines),
        "    return out",
    ]
    return "\n".join([_PRELUDE, f"# window_kernel.py {_fingerprint(window_kernel)}", *body, ""])


def _fingerprint(module: ModuleType) -> str:
    """The hash of a module's source. Numba checks a cached kernel against its own file
    only, not the functions it calls: naming the file after the helpers' source too makes a
    changed helper a new kernel, compiled afresh."""
    assert module.__file__ is not None
    return hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:20]


_PRELUDE = """# Generated by fraud_orchestration.serving.row_sql from the feature SQL; do not edit.
import numpy as np
from numba import njit

from fraud_orchestration.serving.window_kernel import (
    NAN, divide, floor, logic, round_half_away, window_aggregates,
)
"""


def _load(source: str) -> ModuleType:
    """The generated module, from a file named by the source's hash (written once: Numba's
    cache of its machine code is valid while the file stays as it is)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    directory = kernel_directory()
    path = directory / f"features_{digest}.py"
    if not path.exists() or path.read_text() != source:
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(source)
        os.replace(partial, path)
    name = f"fraud_orchestration_kernel_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
