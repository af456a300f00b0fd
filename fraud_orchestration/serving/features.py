"""Online feature computation: THE feature SQL over a small per-request frame.

For a request the service builds one frame -- the cards' recent transactions, the terminals'
recent (labelled) transactions, the recent events the service itself has scored since the
online store was built, and the request's own rows -- and runs the exact text of
``fraud_orchestration/features/transaction_features.sql`` over it, keeping the request rows.
The windows look only backwards (customer: ``(t - w, t]``; terminal: ``(t - 7d - w, t - 7d]``),
so rows the frame holds beyond what a request row's windows reach change nothing, and a row's
features are the offline store's as long as the frame holds every event its windows reach.

Merging never duplicates a transaction (a card's transaction at the request's terminal is in
both histories): rows are keyed by ``transaction_id``; a terminal-history row (it carries the
label) wins over a card-history row, a store row wins over a recent event (the store has the
label) and the request's own row wins over everything. Request rows and recent events have
``tx_fraud = 0`` (unknown): terminal windows end 7 days before the transaction, so no label
younger than 7 days is ever read -- as long as the online store is at most 7 days old.

Recent events (:class:`RecentEvents`) are the service's stand-in for the streaming update a
production online store gets: every scored transaction is appended, so a later request sees
the earlier ones, even before the nightly store refresh. They live in this process's memory
(run one worker process per store); when a newer store is published, the events it covers
(older than its ``as_of``) are dropped.

Engines, all running that one text: ``compiled`` (the default: the text parsed once into a
vectorised NumPy evaluator, ``serving.window_sql``, ~1 ms a call whether it scores one
transaction or a batch of them), ``duckdb`` (the engine that builds the offline features, on a
cached single-thread connection per worker thread: ~10 ms a query however small the frame) and
``sqlite`` (Python's SQLite runs the same text -- window RANGE frames, ``FLOOR``, ``CAST`` --
with the online store attached: ~1-2 ms for one transaction's ~100 rows, growing faster with
the frame than DuckDB). Every engine but DuckDB, the reference, is used only after it
reproduced DuckDB's features on a canary frame at start-up (:func:`verify_engine`); ``auto``
takes the compiled evaluator, else SQLite for requests of up to ``sqlite_max_rows``
transactions and DuckDB above, and ``/admin/status`` says which engine was refused and why.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from fraud_orchestration.features import FEATURE_NAMES, FEATURES, SOURCE_VIEW, feature_sql
from fraud_orchestration.serving.schema import Transaction
from fraud_orchestration.serving.window_sql import CompiledQuery, UnsupportedSQL
from fraud_orchestration.settings import SERVING_ENGINES

log = logging.getLogger(__name__)

REQUEST_IDS_TABLE = "serving_request_ids"
EXACT_KINDS = ("raw", "flag", "count")

Row = tuple[int, int, int, int, float, int]
"""(transaction_id, tx_time_seconds, customer_id, terminal_id, tx_amount, tx_fraud)."""
_ROW_COLUMNS = (
    "transaction_id",
    "tx_time_seconds",
    "customer_id",
    "terminal_id",
    "tx_amount",
    "tx_fraud",
)


class StoreUnavailableError(RuntimeError):
    """The online store file is missing or unreadable."""


_UNSEEN = object()


# --------------------------------------------------------------------------- recent events


class RecentEvents:
    """Transactions scored since the online store was built, by card and by terminal.

    Bounded by ``max_events``: beyond it the earliest-added events are forgotten. There is
    no time horizon on purpose: one request dated far in the future must not flush the
    buffer; events older than every window are harmless (the windows ignore them) and go
    when a newer online store covers them (:meth:`drop_before`). Thread-safe.
    """

    def __init__(self, max_events: int = 2_000_000) -> None:
        self.max_events = max_events
        self._lock = threading.Lock()
        self._by_id: dict[int, tuple[int, int, int, int, float]] = {}
        self._by_customer: dict[int, set[int]] = {}
        self._by_terminal: dict[int, set[int]] = {}
        self._added: dict[int, int] = {}
        self._order: deque[tuple[int, int]] = deque()
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, transactions: Iterable[Transaction]) -> None:
        with self._lock:
            for t in transactions:
                self._remove(t.transaction_id)
                row = (t.transaction_id, t.tx_time_seconds, t.customer_id, t.terminal_id)
                self._by_id[t.transaction_id] = (*row, t.tx_amount)
                self._by_customer.setdefault(t.customer_id, set()).add(t.transaction_id)
                self._by_terminal.setdefault(t.terminal_id, set()).add(t.transaction_id)
                self._sequence += 1
                self._added[t.transaction_id] = self._sequence
                self._order.append((self._sequence, t.transaction_id))
            while len(self._by_id) > self.max_events:
                sequence, transaction_id = self._order.popleft()
                if self._added.get(transaction_id) == sequence:
                    self._remove(transaction_id)
            if len(self._order) > 2 * max(len(self._by_id), 1024):  # drop stale entries
                self._order = deque(e for e in self._order if self._added.get(e[1]) == e[0])

    def lookup(self, customer_ids: Iterable[int], terminal_ids: Iterable[int]) -> list[Row]:
        with self._lock:
            ids: set[int] = set()
            for customer in customer_ids:
                ids |= self._by_customer.get(customer, set())
            for terminal in terminal_ids:
                ids |= self._by_terminal.get(terminal, set())
            return [(*self._by_id[i], 0) for i in ids]

    def drop_before(self, seconds: int) -> int:
        """Forget events older than ``seconds`` (a newer online store holds them)."""
        with self._lock:
            old = [i for i, row in self._by_id.items() if row[1] < seconds]
            for transaction_id in old:
                self._remove(transaction_id)
            self._order = deque(e for e in self._order if self._added.get(e[1]) == e[0])
            return len(old)

    def _remove(self, transaction_id: int) -> None:
        row = self._by_id.pop(transaction_id, None)
        if row is None:
            return
        self._added.pop(transaction_id, None)
        for index, key in ((self._by_customer, row[2]), (self._by_terminal, row[3])):
            members = index.get(key)
            if members is not None:
                members.discard(transaction_id)
                if not members:
                    del index[key]


# --------------------------------------------------------------------------- online store


class OnlineStoreReader:
    """Read-only access to the online store that ``LocalFeatureStore.publish_online`` writes.

    The store is replaced by renaming a new file into place, so an open connection would keep
    reading the old file: the reader notices a new file (inode, size, mtime; checked at most
    every ``check_seconds``) and every worker thread reopens its connection.
    """

    def __init__(self, path: str | Path | None, check_seconds: float = 1.0) -> None:
        self.path = Path(path) if path else None
        self.check_seconds = check_seconds
        self.generation = 0
        self.as_of_seconds: int | None = None
        self.loaded_at: float | None = None
        self.error: str | None = None
        self._signature: Any = _UNSEEN
        self._checked = 0.0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._listeners: list[Any] = []
        self.refresh(force=True)

    @property
    def available(self) -> bool:
        return self._signature is not None and self._signature is not _UNSEEN

    def on_new_store(self, callback: Any) -> None:
        """``callback(as_of_seconds)`` runs whenever a newer store file is seen."""
        self._listeners.append(callback)

    def refresh(self, force: bool = False) -> bool:
        """Look for a newer store file; True when one was found."""
        now = time.monotonic()
        if not force and now - self._checked < self.check_seconds:
            return False
        with self._lock:
            if not force and now - self._checked < self.check_seconds:
                return False
            self._checked = now
            signature = self._stat()
            if signature == self._signature:
                return False
            as_of = None
            if signature is not None:
                try:
                    as_of = self._read_as_of()
                except sqlite3.Error as error:
                    self.error = f"unreadable online store {self.path}: {error}"
                    log.warning(self.error)
                    signature = None
            self._signature = signature
            self.as_of_seconds = as_of
            self.generation += 1
            self.loaded_at = time.time() if signature else None
            if signature is not None:
                self.error = None
            elif self.error is None and self.path is not None:
                self.error = f"no online store at {self.path}"
        if as_of is not None:
            for callback in self._listeners:
                callback(as_of)
        return True

    def histories(
        self, customer_ids: Sequence[int], terminal_ids: Sequence[int]
    ) -> tuple[list[tuple], list[tuple]]:
        """The cards' rows ``(id, t, customer, terminal, amount)`` and the terminals' rows
        ``(id, t, customer, terminal, amount, fraud)``."""
        self.refresh()
        if not self.available:
            raise StoreUnavailableError(self.error or "no online store configured")
        connection = self._connection()
        cards = connection.execute(
            "SELECT transaction_id, tx_time_seconds, customer_id, terminal_id, tx_amount "
            f"FROM card_history WHERE customer_id IN ({_marks(customer_ids)})",
            list(customer_ids),
        ).fetchall()
        terminals = connection.execute(
            "SELECT transaction_id, tx_time_seconds, customer_id, terminal_id, tx_amount, "
            f"tx_fraud FROM terminal_history WHERE terminal_id IN ({_marks(terminal_ids)})",
            list(terminal_ids),
        ).fetchall()
        return cards, terminals

    def status(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path else None,
            "available": self.available,
            "as_of_seconds": self.as_of_seconds,
            "as_of": _iso(self.as_of_seconds),
            "generation": self.generation,
            "error": self.error,
        }

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "generation", None) != self.generation:
            if getattr(local, "connection", None) is not None:
                local.connection.close()
            local.connection = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
            )
            local.generation = self.generation
        return local.connection

    def _stat(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns)

    def _read_as_of(self) -> int | None:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as connection:
            for table in ("card_history", "terminal_history"):
                connection.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchall()
            try:
                row = connection.execute(
                    "SELECT value FROM meta WHERE key = 'as_of_seconds'"
                ).fetchone()
            except sqlite3.OperationalError:
                row = None
        connection.close()
        return int(row[0]) if row else None


# --------------------------------------------------------------------------- engines


class _Engine:
    name = ""

    def run(self, rows: Sequence[Row], request_ids: Sequence[int]) -> tuple[list[str], list]:
        """The feature SQL over ``rows``; (column names, columns) of the request rows."""
        raise NotImplementedError

    def features(
        self,
        store: OnlineStoreReader,
        recent: RecentEvents,
        transactions: Sequence[Transaction],
    ) -> tuple[list[str], list]:
        """The request rows' features over store history + recent events + the request."""
        customers = sorted({t.customer_id for t in transactions})
        terminals = sorted({t.terminal_id for t in transactions})
        cards, terminal_rows = store.histories(customers, terminals)
        rows = merge_rows(cards, terminal_rows, recent.lookup(customers, terminals), transactions)
        return self.run(rows, [t.transaction_id for t in transactions])


class DuckDBEngine(_Engine):
    """THE SQL on DuckDB: one cached single-thread connection per worker thread; the
    history is read from the store's SQLite file and merged in Python."""

    name = "duckdb"

    def __init__(self, sql: str) -> None:
        self.query = _request_rows_query(sql)
        self._local = threading.local()

    def run(self, rows: Sequence[Row], request_ids: Sequence[int]) -> tuple[list[str], list]:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = duckdb.connect(config={"threads": 1, "memory_limit": "512MB"})
            connection.execute("SET enable_progress_bar = false")
            self._local.connection = connection
        columns = list(zip(*rows, strict=True))
        seconds = np.asarray(columns[1], dtype=np.int64)
        frame = pd.DataFrame(
            {
                "transaction_id": np.asarray(columns[0], dtype=np.int64),
                "tx_datetime": seconds.astype("datetime64[s]"),
                "tx_time_seconds": seconds,
                "customer_id": np.asarray(columns[2], dtype=np.int64),
                "terminal_id": np.asarray(columns[3], dtype=np.int64),
                "tx_amount": np.asarray(columns[4], dtype=np.float64),
                "tx_fraud": np.asarray(columns[5], dtype=np.int32),
            },
            copy=False,
        )
        ids = pd.DataFrame({"transaction_id": np.asarray(request_ids, dtype=np.int64)})
        connection.register(SOURCE_VIEW, frame)
        connection.register(REQUEST_IDS_TABLE, ids)
        try:
            result = connection.execute(self.query).fetchnumpy()
        finally:
            connection.unregister(SOURCE_VIEW)
            connection.unregister(REQUEST_IDS_TABLE)
        names = list(result)
        return names, [_numeric(result[name]) for name in names]


class SQLiteEngine(_Engine):
    """THE SQL on an in-memory SQLite database per worker thread, with the online store
    attached read-only: the history is copied into the frame without leaving SQLite."""

    name = "sqlite"

    def __init__(self, sql: str) -> None:
        self.query = _request_rows_query(sql)
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                ":memory:", uri=True, check_same_thread=False, isolation_level=None
            )  # autocommit: no transaction holds the attached store open
            connection.execute("PRAGMA temp_store = MEMORY")
            connection.execute(
                f"CREATE TEMP TABLE {SOURCE_VIEW} (transaction_id INTEGER PRIMARY KEY, "
                "tx_datetime TEXT, tx_time_seconds INTEGER, customer_id INTEGER, "
                "terminal_id INTEGER, tx_amount REAL, tx_fraud INTEGER)"
            )
            connection.execute(
                f"CREATE TEMP TABLE {REQUEST_IDS_TABLE} (transaction_id INTEGER PRIMARY KEY)"
            )
            self._local.connection = connection
            self._local.generation = None
        return connection

    def run(self, rows: Sequence[Row], request_ids: Sequence[int]) -> tuple[list[str], list]:
        connection = self._connection()
        try:
            connection.executemany(
                f"INSERT OR REPLACE INTO {SOURCE_VIEW} VALUES (?, NULL, ?, ?, ?, ?, ?)", rows
            )
            return self._query(connection, request_ids)
        finally:
            self._clear(connection)

    def features(
        self,
        store: OnlineStoreReader,
        recent: RecentEvents,
        transactions: Sequence[Transaction],
    ) -> tuple[list[str], list]:
        store.refresh()
        if not store.available:
            raise StoreUnavailableError(store.error or "no online store configured")
        connection = self._connection()
        self._attach(connection, store)
        customers = sorted({t.customer_id for t in transactions})
        terminals = sorted({t.terminal_id for t in transactions})
        try:
            # Precedence as in merge_rows: request > terminal history > card history > recent.
            connection.execute(
                f"INSERT OR IGNORE INTO {SOURCE_VIEW} SELECT transaction_id, NULL, "
                "tx_time_seconds, customer_id, terminal_id, tx_amount, tx_fraud "
                f"FROM store.terminal_history WHERE terminal_id IN ({_marks(terminals)})",
                terminals,
            )
            connection.execute(
                f"INSERT OR IGNORE INTO {SOURCE_VIEW} SELECT transaction_id, NULL, "
                "tx_time_seconds, customer_id, terminal_id, tx_amount, 0 "
                f"FROM store.card_history WHERE customer_id IN ({_marks(customers)})",
                customers,
            )
            connection.executemany(
                f"INSERT OR IGNORE INTO {SOURCE_VIEW} VALUES (?, NULL, ?, ?, ?, ?, ?)",
                recent.lookup(customers, terminals),
            )
            connection.executemany(
                f"INSERT OR REPLACE INTO {SOURCE_VIEW} VALUES (?, NULL, ?, ?, ?, ?, 0)",
                [
                    (t.transaction_id, t.tx_time_seconds, t.customer_id, t.terminal_id, t.tx_amount)
                    for t in transactions
                ],
            )
            return self._query(connection, [t.transaction_id for t in transactions])
        finally:
            self._clear(connection)

    def _attach(self, connection: sqlite3.Connection, store: OnlineStoreReader) -> None:
        if self._local.generation == store.generation:
            return
        if self._local.generation is not None:
            connection.execute("DETACH DATABASE store")
            self._local.generation = None
        connection.execute("ATTACH DATABASE ? AS store", (f"file:{store.path}?mode=ro",))
        self._local.generation = store.generation

    def _query(self, connection: sqlite3.Connection, request_ids: Sequence[int]) -> tuple:
        connection.executemany(
            f"INSERT INTO {REQUEST_IDS_TABLE} VALUES (?)", [(i,) for i in request_ids]
        )
        cursor = connection.execute(self.query)
        result = cursor.fetchall()
        names = [d[0] for d in cursor.description]
        columns = list(zip(*result, strict=True)) if result else [() for _ in names]
        return names, [np.array(column, dtype=object) for column in columns]

    @staticmethod
    def _clear(connection: sqlite3.Connection) -> None:
        connection.execute(f"DELETE FROM {SOURCE_VIEW}")
        connection.execute(f"DELETE FROM {REQUEST_IDS_TABLE}")


class CompiledEngine(_Engine):
    """THE SQL text compiled into a vectorised NumPy evaluator (``serving.window_sql``): no
    query engine's fixed cost per request, and one call for a whole batch of requests."""

    name = "compiled"

    def __init__(self, sql: str) -> None:
        self.query = CompiledQuery(sql, ["transaction_id", *FEATURE_NAMES])

    def run(self, rows: Sequence[Row], request_ids: Sequence[int]) -> tuple[list[str], list]:
        table = np.array(rows, dtype=np.float64).reshape(len(rows), len(_ROW_COLUMNS))
        columns = {name: table[:, j] for j, name in enumerate(_ROW_COLUMNS)}
        ids = columns["transaction_id"]
        sorter = np.argsort(ids)
        wanted = np.asarray(request_ids, dtype=np.float64)
        found = np.searchsorted(ids, wanted, sorter=sorter)
        positions = sorter[np.minimum(found, len(ids) - 1)]
        if not np.array_equal(ids[positions], wanted):
            raise KeyError("a request transaction is missing from the frame")
        result = self.query.evaluate(columns, positions)
        names = list(result)
        return names, [result[name] for name in names]


def _request_rows_query(sql: str) -> str:
    """THE SQL text, unchanged, as a subquery; only the request's rows are kept."""
    return (
        f"SELECT * FROM ({sql}\n) AS features "
        f"WHERE transaction_id IN (SELECT transaction_id FROM {REQUEST_IDS_TABLE})"
    )


def _numeric(column: Any) -> np.ndarray:
    if isinstance(column, np.ma.MaskedArray):
        return np.ma.filled(column.astype(np.float64), np.nan)
    return np.asarray(column)


# --------------------------------------------------------------------------- computer


@dataclass(frozen=True)
class FeatureMatrix:
    names: list[str]
    values: np.ndarray
    """``float64[rows, len(names)]`` in request order; NULL is NaN."""

    def rows(self, start: int, end: int) -> FeatureMatrix:
        return FeatureMatrix(self.names, self.values[start:end])

    def row(self, index: int) -> dict[str, float]:
        values = self.values[index]
        return {name: float(value) for name, value in zip(self.names, values, strict=True)}


class FeatureComputer:
    """Features for request transactions, from the online store and the recent events.

    ``engine="auto"`` runs every request on the compiled evaluator once it has reproduced
    DuckDB's features on the canary frame. Should it refuse the text (or differ), requests of
    up to ``sqlite_max_rows`` transactions run on SQLite (little fixed cost per query) and
    larger ones on DuckDB (faster on big frames), SQLite too only once it passed the canary.
    ``compiled`` and ``sqlite`` ask for one engine (DuckDB if it is refused), ``duckdb`` for
    the reference engine itself.
    """

    def __init__(
        self,
        store: OnlineStoreReader,
        recent: RecentEvents,
        engine: str = "auto",
        sql: str | None = None,
        sqlite_max_rows: int = 16,
    ) -> None:
        if engine not in SERVING_ENGINES:
            raise ValueError(f"engine must be one of {SERVING_ENGINES}, got {engine!r}")
        self.store = store
        self.recent = recent
        self.sql = sql if sql is not None else feature_sql()
        self.names = list(FEATURE_NAMES)
        self.requested_engine = engine
        notes: list[str] = []
        self.duckdb = DuckDBEngine(self.sql)
        self.compiled: CompiledEngine | None = None
        self.sqlite: SQLiteEngine | None = None
        self.sqlite_max_rows = sqlite_max_rows if engine == "auto" else 0
        if engine in ("compiled", "auto"):
            try:
                compiled = CompiledEngine(self.sql)
            except UnsupportedSQL as error:
                problem: str | None = f"the text is not in its dialect: {error}"
            else:
                problem = verify_engine(compiled, self.duckdb)
            if problem is None:
                self.compiled = compiled
            else:
                notes.append(f"compiled refused: {problem}")
        if engine == "sqlite" or (engine == "auto" and self.compiled is None):
            candidate = SQLiteEngine(self.sql)
            problem = verify_engine(candidate, self.duckdb)
            if problem is None:
                self.sqlite = candidate
                if engine == "sqlite":
                    self.sqlite_max_rows = 1 << 62
            else:
                notes.append(f"sqlite refused: {problem}")
        if notes:
            fallback = self.sqlite.name if self.sqlite is not None else "duckdb"
            self.engine_note: str | None = f"{'; '.join(notes)}; using {fallback}"
            log.warning(self.engine_note)
        else:
            self.engine_note = None

    def engine_for(self, rows: int) -> _Engine:
        if self.compiled is not None:
            return self.compiled
        if self.sqlite is not None and rows <= self.sqlite_max_rows:
            return self.sqlite
        return self.duckdb

    def compute(self, transactions: Sequence[Transaction]) -> FeatureMatrix:
        engine = self.engine_for(len(transactions))
        names, columns = engine.features(self.store, self.recent, transactions)
        return self._matrix(names, columns, [t.transaction_id for t in transactions])

    def compute_rows(
        self, rows: Sequence[Row], request_ids: Sequence[int], engine: _Engine | None = None
    ) -> FeatureMatrix:
        engine = engine or self.engine_for(len(request_ids))
        names, columns = engine.run(rows, request_ids)
        return self._matrix(names, columns, request_ids)

    def warm_up(self) -> None:
        """Open this thread's connections and run the SQL once on each engine."""
        rows = canary_rows()
        ids = [row[0] for row in rows[-4:]]
        for engine in (self.duckdb, self.sqlite, self.compiled):
            if engine is not None:
                self.compute_rows(rows, ids, engine)

    def _matrix(self, names: list[str], columns: list, request_ids: Sequence[int]) -> FeatureMatrix:
        by_name = dict(zip(names, columns, strict=True))
        missing = [name for name in self.names if name not in by_name]
        if missing:
            raise RuntimeError(f"the feature SQL did not produce {missing}")
        position = {int(i): n for n, i in enumerate(by_name["transaction_id"])}
        order = np.array([position[i] for i in request_ids], dtype=np.int64)
        values = np.empty((len(request_ids), len(self.names)), dtype=np.float64)
        for j, name in enumerate(self.names):
            values[:, j] = np.asarray(by_name[name][order], dtype=np.float64)
        return FeatureMatrix(self.names, values)

    def status(self) -> dict[str, Any]:
        return {
            "engine": self.requested_engine,
            "compiled": self.compiled is not None,
            "sqlite": self.sqlite is not None,
            "sqlite_max_rows": self.sqlite_max_rows if self.sqlite is not None else 0,
            "engine_note": self.engine_note,
            "features": len(self.names),
        }


def merge_rows(
    cards: Iterable[tuple],
    terminals: Iterable[tuple],
    recent: Iterable[Row],
    transactions: Iterable[Transaction],
) -> list[Row]:
    """One row per transaction: request > terminal history (labelled) > card history >
    recent events (see the module docstring)."""
    merged: dict[int, Row] = {}
    for row in recent:
        merged[row[0]] = row
    for card_row in cards:  # no label column: a card's history is never labelled online
        merged[card_row[0]] = (*card_row, 0)
    for terminal_row in terminals:
        merged[terminal_row[0]] = terminal_row
    for t in transactions:
        merged[t.transaction_id] = (
            t.transaction_id,
            t.tx_time_seconds,
            t.customer_id,
            t.terminal_id,
            t.tx_amount,
            0,
        )
    return list(merged.values())


# --------------------------------------------------------------------------- verification


def canary_rows(seed: int = 7) -> list[Row]:
    """A deterministic frame exercising every window: 4 cards, 3 terminals, 50 days,
    labels, same-second peers and rows exactly on window edges."""
    rng = np.random.default_rng(seed)
    start = 1_522_540_800  # 2018-04-01
    seconds = np.sort(rng.integers(start, start + 50 * 86_400, 400))
    seconds[10] = seconds[9]  # same-second peers
    seconds[200] = seconds[100] + 7 * 86_400  # a terminal window's near edge
    seconds[300] = seconds[150] + 86_400  # a one-day window's far edge
    rows = [
        (
            i,
            int(seconds[i]),
            int(rng.integers(0, 4)),
            int(rng.integers(0, 3)),
            round(float(rng.gamma(2.0, 40.0)), 2),
            int(rng.random() < 0.2),
        )
        for i in range(len(seconds))
    ]
    return rows


def verify_engine(candidate: _Engine, reference: _Engine) -> str | None:
    """None when ``candidate`` gives ``reference``'s features on :func:`canary_rows`;
    otherwise what went wrong. Counts and flags must match exactly, the rest within 1e-9."""
    rows = canary_rows()
    ids = [row[0] for row in rows]
    try:
        want_names, want = reference.run(rows, ids)
    except Exception as error:  # noqa: BLE001
        return f"the {reference.name} reference failed: {error.__class__.__name__}: {error}"
    try:
        got_names, got = candidate.run(rows, ids)
    except Exception as error:  # noqa: BLE001 - any failure means "not usable"
        return f"{candidate.name} failed: {error.__class__.__name__}: {error}"

    def by_id(names: list[str], columns: list) -> dict[int, dict[str, Any]]:
        id_column = columns[names.index("transaction_id")]
        return {
            int(i): {name: columns[k][n] for k, name in enumerate(names)}
            for n, i in enumerate(id_column)
        }

    got_rows, want_rows = by_id(got_names, got), by_id(want_names, want)
    if set(got_rows) != set(want_rows):
        return "the engines returned different transactions"
    for feature in FEATURES:
        for transaction_id, want_row in want_rows.items():
            a = want_row.get(feature.name)
            b = got_rows[transaction_id].get(feature.name)
            if a is None or b is None:
                if a is not b:
                    return f"{feature.name} of canary {transaction_id}: {b!r} != {a!r}"
                continue
            a, b = float(a), float(b)
            if feature.kind in EXACT_KINDS:
                same = a == b
            else:
                same = math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
            if not same:
                return f"{feature.name} of canary {transaction_id}: {b!r} != {a!r}"
    return None


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def _iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return pd.Timestamp(seconds, unit="s").isoformat()
