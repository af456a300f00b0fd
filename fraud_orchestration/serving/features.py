"""Online feature computation: THE feature SQL over a small per-request frame.

For a request the service builds one frame -- the cards' recent transactions, the terminals'
recent (labelled) transactions, the recent events the service itself has scored since the
online store was built, and the request's own rows -- and runs the exact text of
``fraud_orchestration/features/transaction_features.sql`` over it, keeping the request rows.
The windows look only backwards (customer: ``(t - w, t]``; terminal: ``(t - 7d - w, t - 7d]``),
so rows the frame holds beyond what a request row's windows reach change nothing, and a row's
features are the offline store's as long as the frame holds every event its windows reach.

The online store (the SQLite file ``LocalFeatureStore.publish_online`` writes) is read once
per published file into NumPy columns sorted by card or terminal, then time
(:class:`StoreHistory`): a card's history is one slice found by two binary searches, and a
frame is assembled with a handful of array operations whatever the number of rows, with no
Python work per history row. That costs memory, 48 bytes a stored transaction (about 30 MB
for 650,000), and a new file is loaded in the background while the previous one keeps
serving (:class:`OnlineStoreReader`).

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

Engines, all running that one text: ``compiled`` (the text parsed once into a vectorised
NumPy evaluator, ``serving.window_sql``, ~1 ms a call whether it scores one transaction or a
batch of them), ``rows`` (the same parsed text evaluated row by row in plain Python,
``serving.row_sql``: little fixed cost, more per row; ``auto`` gives it batches of up to
``row_max_rows`` transactions), ``duckdb`` (the engine that builds the offline features, on a
cached single-thread connection per worker thread: ~10 ms a query however small the frame) and
``sqlite`` (Python's SQLite runs the same text -- window RANGE frames, ``FLOOR``, ``CAST`` --
over the frame copied into an in-memory table: ~1-2 ms for one transaction's ~100 rows,
growing faster with the frame than DuckDB). Every engine but DuckDB, the reference, is used
only after it reproduced DuckDB's features on a canary frame at start-up
(:func:`verify_engine`); ``auto`` takes the row evaluator for small batches and the compiled
one for the rest, else SQLite for requests of up to ``sqlite_max_rows`` transactions and
DuckDB above, and ``/admin/status`` says which engine was refused and why.
"""

from __future__ import annotations

import logging
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
from fraud_orchestration.serving.row_sql import RowQuery
from fraud_orchestration.serving.schema import Transaction
from fraud_orchestration.serving.window_sql import CompiledQuery, UnsupportedSQL
from fraud_orchestration.settings import SERVING_ENGINES

log = logging.getLogger(__name__)

REQUEST_IDS_TABLE = "serving_request_ids"
ROW_MAX_ROWS = 64
"""``auto``: requests (and batches) of up to this many transactions run on the row
evaluator, larger ones on the vectorised evaluator (the crossover in the serving benchmark's
evaluator table, which times them as the service runs them: after other work)."""

Row = tuple[int, int, int, int, float, int]
"""(transaction_id, tx_time_seconds, customer_id, terminal_id, tx_amount, tx_fraud)."""
ROW_COLUMNS = (
    "transaction_id",
    "tx_time_seconds",
    "customer_id",
    "terminal_id",
    "tx_amount",
    "tx_fraud",
)
Frame = dict[str, np.ndarray]
"""Transactions as float64 columns named ``ROW_COLUMNS`` (whole numbers are exact up to 2**53)."""


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


# --------------------------------------------------------------------------- frames


def frame_from_rows(rows: Sequence[Row]) -> Frame:
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(ROW_COLUMNS))
    return {name: table[:, j] for j, name in enumerate(ROW_COLUMNS)}


def request_frame(transactions: Sequence[Transaction]) -> Frame:
    """The request's own rows (label unknown: 0)."""
    return frame_from_rows(
        [
            (t.transaction_id, t.tx_time_seconds, t.customer_id, t.terminal_id, t.tx_amount, 0)
            for t in transactions
        ]
    )


def merge_frames(*frames: Frame) -> Frame:
    """One row per transaction: where frames share a ``transaction_id``, the later frame's row
    wins (pass them as recent events, card history, terminal history, request)."""
    joined = {name: np.concatenate([frame[name] for frame in frames]) for name in ROW_COLUMNS}
    ids = joined["transaction_id"]
    _, first_from_end = np.unique(ids[::-1], return_index=True)
    keep = len(ids) - 1 - first_from_end
    return {name: column[keep] for name, column in joined.items()}


def _slices(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Indices of every row of sorted ``keys`` equal to one of ``wanted`` (distinct values),
    slice after slice, without a Python loop."""
    starts = np.searchsorted(keys, wanted, side="left")
    lengths = np.searchsorted(keys, wanted, side="right") - starts
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return offsets + np.arange(int(lengths.sum()))


# --------------------------------------------------------------------------- online store


class StoreHistory:
    """One online store file's history tables as NumPy columns, each sorted by its entity
    (card or terminal) then time, so an entity's rows are one contiguous slice."""

    def __init__(self, cards: Frame, terminals: Frame, as_of_seconds: int | None) -> None:
        self.cards = cards
        self.terminals = terminals
        self.as_of_seconds = as_of_seconds

    @classmethod
    def load(cls, path: Path) -> StoreHistory:
        """Raises ``sqlite3.Error`` when the file is not a readable online store (``ValueError``
        when a column holds something other than numbers)."""
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            cards = _read_sorted(
                connection,
                "SELECT transaction_id, tx_time_seconds, customer_id, terminal_id, tx_amount, 0 "
                "FROM card_history ORDER BY customer_id, tx_time_seconds, transaction_id",
            )
            terminals = _read_sorted(
                connection,
                "SELECT transaction_id, tx_time_seconds, customer_id, terminal_id, tx_amount, "
                "tx_fraud FROM terminal_history "
                "ORDER BY terminal_id, tx_time_seconds, transaction_id",
            )
            try:
                row = connection.execute(
                    "SELECT value FROM meta WHERE key = 'as_of_seconds'"
                ).fetchone()
            except sqlite3.OperationalError:
                row = None
        finally:
            connection.close()
        return cls(cards, terminals, int(row[0]) if row else None)

    def of(self, customer_ids: np.ndarray, terminal_ids: np.ndarray) -> tuple[Frame, Frame]:
        """The cards' and the terminals' rows (``customer_ids``, ``terminal_ids`` distinct)."""
        cards = _slices(self.cards["customer_id"], customer_ids)
        terminals = _slices(self.terminals["terminal_id"], terminal_ids)
        return (
            {name: column[cards] for name, column in self.cards.items()},
            {name: column[terminals] for name, column in self.terminals.items()},
        )

    @property
    def rows(self) -> int:
        return len(self.cards["transaction_id"]) + len(self.terminals["transaction_id"])

    @property
    def nbytes(self) -> int:
        frames = (self.cards, self.terminals)
        return sum(column.nbytes for frame in frames for column in frame.values())


def _read_sorted(connection: sqlite3.Connection, query: str) -> Frame:
    rows = connection.execute(query).fetchall()
    frame = frame_from_rows(rows)
    return {name: np.ascontiguousarray(column) for name, column in frame.items()}


class OnlineStoreReader:
    """The online store the service reads: the :class:`StoreHistory` of the newest good file.

    ``publish_online`` replaces the file by renaming a new one into place. The reader notices
    a new file (inode, size, mtime; checked at most every ``check_seconds``) and loads it in a
    background thread while requests keep using the history already loaded; the switch is
    one reference assignment. A new file that cannot be read leaves the previous history
    serving, with the error in :meth:`status`.
    """

    def __init__(self, path: str | Path | None, check_seconds: float = 1.0) -> None:
        self.path = Path(path) if path else None
        self.check_seconds = check_seconds
        self.generation = 0
        self.loaded_at: float | None = None
        self.error: str | None = None
        self.history: StoreHistory | None = None
        self._signature: Any = _UNSEEN
        self._checked = 0.0
        self._loading = False
        self._lock = threading.Lock()
        self._listeners: list[Any] = []
        self.refresh(force=True)

    @property
    def available(self) -> bool:
        return self.history is not None

    @property
    def as_of_seconds(self) -> int | None:
        return self.history.as_of_seconds if self.history is not None else None

    def on_new_store(self, callback: Any) -> None:
        """``callback(as_of_seconds)`` runs whenever a newer store file has been loaded."""
        self._listeners.append(callback)

    def refresh(self, force: bool = False) -> bool:
        """Look for a newer store file. ``force``: now, and load it before returning (True
        when one was loaded); otherwise at most every ``check_seconds``, loading in the
        background (False: the new history is not in use yet)."""
        now = time.monotonic()
        if not force and (now - self._checked < self.check_seconds or self._loading):
            return False
        with self._lock:
            if self._loading or (not force and now - self._checked < self.check_seconds):
                return False
            self._checked = now
            signature = self._stat()
            if signature == self._signature:
                return False
            self._signature = signature
            if signature is None:
                self.error = f"no online store at {self.path}" if self.path else None
                return False
            self._loading = True
        if force:
            return self._load()
        threading.Thread(target=self._load, name="online-store-load", daemon=True).start()
        return False

    def _load(self) -> bool:
        assert self.path is not None
        try:
            history = StoreHistory.load(self.path)
        except Exception as error:  # noqa: BLE001 - any bad file leaves the previous serving
            self.error = f"unreadable online store {self.path}: {error.__class__.__name__}: {error}"
            log.warning(self.error)
            return False
        finally:
            self._loading = False
        self.history = history
        self.generation += 1
        self.loaded_at = time.time()
        self.error = None
        log.info(
            "online store %s loaded: %d rows as of %s",
            self.path,
            history.rows,
            _iso(history.as_of_seconds),
        )
        if history.as_of_seconds is not None:
            for callback in self._listeners:
                callback(history.as_of_seconds)
        return True

    def histories(self, customer_ids: np.ndarray, terminal_ids: np.ndarray) -> tuple[Frame, Frame]:
        """The cards' rows and the terminals' rows (ids distinct), labels on the terminals'."""
        self.refresh()
        history = self.history
        if history is None:
            raise StoreUnavailableError(self.error or "no online store configured")
        return history.of(customer_ids, terminal_ids)

    def status(self) -> dict[str, Any]:
        history = self.history
        return {
            "path": str(self.path) if self.path else None,
            "available": history is not None,
            "as_of_seconds": self.as_of_seconds,
            "as_of": _iso(self.as_of_seconds),
            "generation": self.generation,
            "rows_in_memory": history.rows if history is not None else 0,
            "memory_mb": round(history.nbytes / 2**20, 1) if history is not None else 0.0,
            "loading": self._loading,
            "error": self.error,
        }

    def _stat(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns)


# --------------------------------------------------------------------------- engines


class _Engine:
    name = ""

    def run(self, frame: Frame, request_ids: Sequence[int]) -> tuple[list[str], list]:
        """The feature SQL over ``frame``; (column names, columns) of the request rows."""
        raise NotImplementedError

    def features(
        self,
        store: OnlineStoreReader,
        recent: RecentEvents,
        transactions: Sequence[Transaction],
    ) -> tuple[list[str], list]:
        """The request rows' features over store history + recent events + the request."""
        frame = history_frame(store, recent, transactions)
        return self.run(frame, [t.transaction_id for t in transactions])


def history_frame(
    store: OnlineStoreReader, recent: RecentEvents, transactions: Sequence[Transaction]
) -> Frame:
    """What the feature SQL runs over for ``transactions``: their cards' and terminals'
    stored history, the recent events of those, and the transactions themselves."""
    customers = sorted({t.customer_id for t in transactions})
    terminals = sorted({t.terminal_id for t in transactions})
    cards, terminal_rows = store.histories(
        np.array(customers, dtype=np.float64), np.array(terminals, dtype=np.float64)
    )
    recent_rows = frame_from_rows(recent.lookup(customers, terminals))
    return merge_frames(recent_rows, cards, terminal_rows, request_frame(transactions))


def frame_positions(frame: Frame, request_ids: Sequence[int]) -> np.ndarray:
    """Where the request transactions are in ``frame``."""
    ids = frame["transaction_id"]
    sorter = np.argsort(ids)
    wanted = np.asarray(request_ids, dtype=np.float64)
    found = np.searchsorted(ids, wanted, sorter=sorter)
    positions = sorter[np.minimum(found, len(ids) - 1)]
    if not np.array_equal(ids[positions], wanted):
        raise KeyError("a request transaction is missing from the frame")
    return positions


class DuckDBEngine(_Engine):
    """THE SQL on DuckDB: one cached single-thread connection per worker thread."""

    name = "duckdb"

    def __init__(self, sql: str) -> None:
        self.query = _request_rows_query(sql)
        self._local = threading.local()

    def run(self, frame: Frame, request_ids: Sequence[int]) -> tuple[list[str], list]:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = duckdb.connect(config={"threads": 1, "memory_limit": "512MB"})
            connection.execute("SET enable_progress_bar = false")
            self._local.connection = connection
        seconds = frame["tx_time_seconds"].astype(np.int64)
        source = pd.DataFrame(
            {
                "transaction_id": frame["transaction_id"].astype(np.int64),
                "tx_datetime": seconds.astype("datetime64[s]"),
                "tx_time_seconds": seconds,
                "customer_id": frame["customer_id"].astype(np.int64),
                "terminal_id": frame["terminal_id"].astype(np.int64),
                "tx_amount": frame["tx_amount"],
                "tx_fraud": frame["tx_fraud"].astype(np.int32),
            },
            copy=False,
        )
        ids = pd.DataFrame({"transaction_id": np.asarray(request_ids, dtype=np.int64)})
        connection.register(SOURCE_VIEW, source)
        connection.register(REQUEST_IDS_TABLE, ids)
        try:
            result = connection.execute(self.query).fetchnumpy()
        finally:
            connection.unregister(SOURCE_VIEW)
            connection.unregister(REQUEST_IDS_TABLE)
        names = list(result)
        return names, [_numeric(result[name]) for name in names]


class SQLiteEngine(_Engine):
    """THE SQL on an in-memory SQLite database per worker thread."""

    name = "sqlite"

    def __init__(self, sql: str) -> None:
        self.query = _request_rows_query(sql)
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
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
        return connection

    def run(self, frame: Frame, request_ids: Sequence[int]) -> tuple[list[str], list]:
        connection = self._connection()

        def whole(name: str) -> list[int]:
            return frame[name].astype(np.int64).tolist()

        rows = zip(
            whole("transaction_id"),
            whole("tx_time_seconds"),
            whole("customer_id"),
            whole("terminal_id"),
            frame["tx_amount"].tolist(),
            whole("tx_fraud"),
            strict=True,
        )
        try:
            connection.executemany(
                f"INSERT INTO {SOURCE_VIEW} VALUES (?, NULL, ?, ?, ?, ?, ?)", rows
            )
            connection.executemany(
                f"INSERT INTO {REQUEST_IDS_TABLE} VALUES (?)", [(i,) for i in request_ids]
            )
            cursor = connection.execute(self.query)
            result = cursor.fetchall()
        finally:
            connection.execute(f"DELETE FROM {SOURCE_VIEW}")
            connection.execute(f"DELETE FROM {REQUEST_IDS_TABLE}")
        names = [d[0] for d in cursor.description]
        columns = list(zip(*result, strict=True)) if result else [() for _ in names]
        return names, [np.array(column, dtype=object) for column in columns]


class CompiledEngine(_Engine):
    """THE SQL text compiled into a vectorised NumPy evaluator (``serving.window_sql``): no
    query engine's fixed cost per request, and one call for a whole batch of requests."""

    name = "compiled"

    def __init__(self, sql: str) -> None:
        self.query: CompiledQuery | RowQuery = CompiledQuery(
            sql, ["transaction_id", *FEATURE_NAMES]
        )

    def run(self, frame: Frame, request_ids: Sequence[int]) -> tuple[list[str], list]:
        result = self.query.evaluate(frame, frame_positions(frame, request_ids))
        names = list(result)
        return names, [result[name] for name in names]


class RowEngine(CompiledEngine):
    """THE SQL text evaluated row by row in machine code it generates and compiles with Numba
    (``serving.row_sql``): a fraction of the vectorised evaluator's fixed cost, more per row;
    for a few transactions at a time."""

    name = "rows"

    def __init__(self, sql: str) -> None:
        self.query = RowQuery(sql, ["transaction_id", *FEATURE_NAMES])


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

    ``engine="auto"`` runs requests of up to ``row_max_rows`` transactions on the row
    evaluator and larger ones on the vectorised one, each once it has reproduced DuckDB's
    features on the canary frame (the row evaluator is tried only beside a vectorised one
    that passed: they share a parser). Should the vectorised evaluator refuse the text (or
    differ), requests of up to ``sqlite_max_rows`` transactions run on SQLite (little fixed
    cost per query) and larger ones on DuckDB (faster on big frames), SQLite too only once it
    passed the canary. ``compiled`` and ``sqlite`` ask for one engine (DuckDB if it is
    refused), ``duckdb`` for the reference engine itself.
    """

    def __init__(
        self,
        store: OnlineStoreReader,
        recent: RecentEvents,
        engine: str = "auto",
        sql: str | None = None,
        sqlite_max_rows: int = 16,
        row_max_rows: int = ROW_MAX_ROWS,
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
        self.rows: RowEngine | None = None
        self.sqlite_max_rows = sqlite_max_rows if engine == "auto" else 0
        self.row_max_rows = row_max_rows if engine == "auto" else 0
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
        if engine == "auto" and self.compiled is not None and self.row_max_rows > 0:
            try:  # generates and compiles its kernel: a cache directory it cannot write...
                rows_engine = RowEngine(self.sql)
            except Exception as error:  # noqa: BLE001 - any failure means "not usable"
                notes.append(f"rows refused: {error.__class__.__name__}: {error}")
            else:
                problem = verify_engine(rows_engine, self.duckdb)
                if problem is None:
                    self.rows = rows_engine
                else:
                    notes.append(f"rows refused: {problem}")
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
            fallback = next(
                engine.name for engine in (self.compiled, self.sqlite, self.duckdb) if engine
            )
            self.engine_note: str | None = f"{'; '.join(notes)}; using {fallback}"
            log.warning(self.engine_note)
        else:
            self.engine_note = None

    def engine_for(self, rows: int) -> _Engine:
        if self.rows is not None and rows <= self.row_max_rows:
            return self.rows
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
        names, columns = engine.run(frame_from_rows(rows), request_ids)
        return self._matrix(names, columns, request_ids)

    def warm_up(self) -> None:
        """Open this thread's connections and run the SQL once on each engine."""
        rows = canary_rows()
        ids = [row[0] for row in rows[-4:]]
        for engine in (self.duckdb, self.sqlite, self.compiled, self.rows):
            if engine is not None:
                self.compute_rows(rows, ids, engine)

    def _matrix(self, names: list[str], columns: list, request_ids: Sequence[int]) -> FeatureMatrix:
        by_name = dict(zip(names, columns, strict=True))
        missing = [name for name in self.names if name not in by_name]
        if missing:
            raise RuntimeError(f"the feature SQL did not produce {missing}")
        position = {int(i): n for n, i in enumerate(by_name["transaction_id"])}
        order = np.array([position[i] for i in request_ids], dtype=np.int64)
        columns = [np.asarray(by_name[name], dtype=np.float64) for name in self.names]
        return FeatureMatrix(self.names, np.column_stack(columns)[order])

    def status(self) -> dict[str, Any]:
        return {
            "engine": self.requested_engine,
            "compiled": self.compiled is not None,
            "sqlite": self.sqlite is not None,
            "sqlite_max_rows": self.sqlite_max_rows if self.sqlite is not None else 0,
            "rows": self.rows is not None,
            "row_max_rows": self.row_max_rows if self.rows is not None else 0,
            "engine_note": self.engine_note,
            "features": len(self.names),
        }


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
    otherwise what went wrong. Every feature must match bit for bit (see ``Feature.kind``)."""
    rows = canary_rows()
    ids = [row[0] for row in rows]
    frame = frame_from_rows(rows)
    try:
        want_names, want = reference.run(frame, ids)
    except Exception as error:  # noqa: BLE001
        return f"the {reference.name} reference failed: {error.__class__.__name__}: {error}"
    try:
        got_names, got = candidate.run(frame, ids)
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
            if float(a) != float(b):
                return f"{feature.name} of canary {transaction_id}: {b!r} != {a!r}"
    return None


def _iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return pd.Timestamp(seconds, unit="s").isoformat()
