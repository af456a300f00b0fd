"""The scoring service: a plain ASGI 3 app (no web framework, for the per-request CPU) with
the SageMaker inference container contract, run by uvicorn (``serving.server``).

``GET /ping``          200 while the service can answer (the rules always can).
``POST /invocations``  ``application/json`` (one transaction -> one answer; a list ->
                       ``{"predictions": [...]}``) or ``text/csv`` (a header row, then one
                       transaction a row -> ``{"predictions": [...]}``; ``Accept: text/csv``
                       answers in CSV).
                       ``?features=true`` adds each transaction's computed features;
                       ``?record=false`` keeps the transactions out of the recent events
                       (canaries and probes must not become card or terminal history).

An answer::

    {"transaction_id": 17, "score": 0.91, "decision": "fraud", "threshold": 0.42,
     "reasons": [{"feature": "terminal_id_risk_7day_window", "value": 1.0,
                  "contribution": 2.31}, ...],
     "model_version": "3", "fallback": false, "fallback_reason": null}

When the rules answer, ``fallback`` is true, ``fallback_reason`` says why (``no_model``,
``model_error``, ``time_budget``, ``online_store_unavailable``, ``feature_error``),
``model_version`` is null, ``rules_version`` names the rule set and the reasons are the rules
that fired (``{"rule": "high_amount", "score": 0.9}``).

Bad input is a 400 (malformed JSON, a missing, unknown or mistyped field, an out-of-range
value, a bad CSV header or row, an empty request), a 413 (body over ``max_body_bytes``, more
than ``max_rows`` transactions) or a 415 (neither JSON nor CSV), always with
``{"error": <code>, "message": <what is wrong>}``. So are an unknown path (404) and a known
one with another method (405, with ``Allow``). A failure of the service itself is a logged
500 (``internal_error``); bad input never is.

Each request has ``budget_ms`` (default 200) from arrival to answer, plus
``budget_ms_per_extra_row`` (default 2) for every transaction of a list after the first.
Features and the model run on a scoring thread with dynamic batching (in a scoring process
of its own with ``scoring_process``, which ``serve`` turns on: ``serving.scoring_process``):
when free it takes every request waiting (up to ``batch_max_rows`` transactions; probes sent
with ``record=false`` run alone) and computes their features and scores in one pass, so
under concurrency the fixed cost of a feature evaluation and of an XGBoost call is paid once
per batch instead of once per request. It remembers the transactions it scored (the recent
events) once it has answered them. Transactions of one batch see each other exactly as the
offline windows do, by event time. When the model's measured cost would overrun a request's
budget, or no thread has answered when the budget is spent, the rules answer instead (with
the features when they were ready, otherwise with the amount alone).

Admin endpoints (blue/green deploys driven by a separate process; loopback clients only, a
403 for others; all of them 404 when ``admin`` is off):

``GET /admin/status``   the active model, the previous one, the store, counters, settings.
``POST /admin/load``    ``{"model_dir": ..., "version": ...}``, ``{"registry_version": n}`` or
                        ``{"champion": true}``: load into a standby slot, smoke-test it
                        (canary transactions through the service's own features, answer checks,
                        single-transaction latency), and switch atomically only on success;
                        otherwise 422 with the reason and the active model untouched.
``POST /admin/rollback`` switch back to the previous model.
``POST /admin/unload``   serve with the rules only (a kill switch).
``POST /admin/refresh-store`` look for a newer online store file now.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import gc
import io
import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl

import numpy as np

from fraud_orchestration.features import feature_definition_version
from fraud_orchestration.resources.model_registry import (
    ApprovalStatus,
    LocalRegistryStore,
    RegistryError,
)
from fraud_orchestration.serving.features import (
    ROW_MAX_ROWS,
    FeatureComputer,
    FeatureMatrix,
    OnlineStoreReader,
    RecentEvents,
    StoreUnavailableError,
    canary_rows,
)
from fraud_orchestration.serving.model import (
    REASON_METHODS,
    ModelLoadError,
    ModelSlot,
    load_slot,
    smoke_test,
)
from fraud_orchestration.serving.rules import RuleSet
from fraud_orchestration.serving.schema import RequestError, Transaction, parse_request

if TYPE_CHECKING:
    from fraud_orchestration.serving.scoring_process import ScoringProcess

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
JSON = "application/json"


@dataclass(frozen=True)
class ServingConfig:
    online_store_path: str | None = None
    """The SQLite file ``LocalFeatureStore.publish_online`` writes."""
    model_dir: str | None = None
    """A model folder to serve from the start (else the registry's champion, if any)."""
    model_version: str | None = None
    registry_root: str | None = None
    registry_group: str = "fraud-model"
    rules: RuleSet = field(default_factory=RuleSet)
    budget_ms: float = 200.0
    """Time from arrival to answer for one transaction."""
    budget_ms_per_extra_row: float = 2.0
    """A list of n transactions gets ``budget_ms + (n - 1) * budget_ms_per_extra_row``."""
    max_body_bytes: int = 1 << 20
    max_rows: int = 1000
    engine: str = "auto"
    """Feature SQL engine: ``auto``, ``compiled``, ``duckdb`` or ``sqlite`` (see
    ``serving.features``)."""
    sqlite_max_rows: int = 16
    """With ``auto``, when the compiled evaluator is refused: requests up to this many
    transactions run on SQLite, larger ones on DuckDB."""
    row_max_rows: int = ROW_MAX_ROWS
    """With ``auto``: batches up to this many transactions run on the row evaluator, larger
    ones on the vectorised evaluator (``serving.features``)."""
    reasons: str = "approx"
    """Reasons: ``approx`` (Saabas, XGBoost approx_contribs), ``exact`` (TreeSHAP), ``none``."""
    top_reasons: int = 3
    feature_policy: str = "subset"
    """``subset``: a model may use any of the computed features; ``exact``: all of them."""
    scoring_process: bool = False
    """Score in a child process of the HTTP server's own (``serving.scoring_process``): the
    event loop and the scoring thread then stop taking turns under one GIL (at 10 clients
    1.30-1.32x the requests per second of one process in three runs, p99 0.78-1.10x; at one
    client 0.4 ms slower, the message each way; BENCHMARKS.md). ``serve`` turns it on; tests
    that reach into the service keep it in process."""
    workers: int = 1
    """Scoring threads. Each takes every request waiting when it is free (up to
    ``batch_max_rows`` transactions) and scores them in one pass: dynamic batching. One is
    the fastest under Python's GIL: a second thread mostly waits for the lock the first
    holds, and takes small batches off the first one's queue (p99 at 10 clients 26.7 ms with
    two against 18.5 ms with one, both on the vectorised evaluator in a scoring process,
    ``python -m benchmarks.serving`` in BENCHMARKS.md)."""
    batch_max_rows: int = 64
    smoke_max_latency_ms: float = 50.0
    admin: bool = True
    recent_max_events: int = 2_000_000
    store_check_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.reasons not in REASON_METHODS:
            raise ValueError(f"reasons must be one of {REASON_METHODS}")
        if min(self.budget_ms, self.max_rows, self.max_body_bytes, self.workers) <= 0:
            raise ValueError("budget_ms, max_rows, max_body_bytes and workers must be positive")


class _Job:
    """One request's scoring work. Past its deadline (``time.perf_counter``, CLOCK_MONOTONIC
    on Linux, so the same clock in every process) the rules answer instead, and a scoring
    thread that has not started it skips it. ``reply`` is what the service's ``deliver``
    needs to hand the answers back (see :data:`Deliver`)."""

    def __init__(
        self, transactions: list[Transaction], deadline: float, record: bool, reply: Any
    ) -> None:
        self.transactions = transactions
        self.deadline = deadline
        self.record = record
        self.features: FeatureMatrix | None = None
        self.reply = reply

    def expired(self) -> bool:
        return time.perf_counter() >= self.deadline


Deliver = Callable[[list[_Job], list["list[dict[str, Any]] | None"]], None]
"""How a scoring thread hands a batch's answers back (None for a job skipped past its
deadline): each job's own callback (:func:`answer_each`, one process), or one message for
the whole batch to the HTTP front (``serving.scoring_process``)."""


def answer_each(batch: list[_Job], answers: list[list[dict[str, Any]] | None]) -> None:
    """Call each job's ``reply(answers)``; nobody waits any more once the server stopped."""
    for job, job_answers in zip(batch, answers, strict=True):
        with contextlib.suppress(RuntimeError):
            job.reply(job_answers)


def take_batch(queue: deque[_Job], max_rows: int) -> list[_Job]:
    """Take the oldest job and every later one that may join it from ``queue``: recorded
    requests only (a probe's transactions must stay invisible to other requests), no
    transaction twice, at most ``max_rows`` transactions (a larger request runs alone).
    Jobs left behind keep their order."""
    batch = [queue.popleft()]
    if not batch[0].record:
        return batch
    rows = len(batch[0].transactions)
    ids = {t.transaction_id for t in batch[0].transactions}
    waiting: deque[_Job] = deque()
    while queue:
        job = queue.popleft()
        job_ids = {t.transaction_id for t in job.transactions}
        if job.record and rows + len(job.transactions) <= max_rows and not job_ids & ids:
            batch.append(job)
            rows += len(job.transactions)
            ids |= job_ids
        else:
            waiting.append(job)
    queue.extendleft(reversed(waiting))
    return batch


class ScoringService:
    """The state behind the app: model slots, online features, rules, counters."""

    def __init__(self, config: ServingConfig, deliver: Deliver = answer_each) -> None:
        self.config = config
        self.deliver = deliver
        self.store = OnlineStoreReader(config.online_store_path, config.store_check_seconds)
        self.recent = RecentEvents(max_events=config.recent_max_events)
        self.store.on_new_store(self.recent.drop_before)
        if self.store.as_of_seconds is not None:
            self.recent.drop_before(self.store.as_of_seconds)
        self.computer = FeatureComputer(
            self.store,
            self.recent,
            engine=config.engine,
            sqlite_max_rows=config.sqlite_max_rows,
            row_max_rows=config.row_max_rows,
        )
        config.rules.check_features(self.computer.names)
        self.rules = config.rules
        self._queue: deque[_Job] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self.active: ModelSlot | None = None
        self.previous: ModelSlot | None = None
        self.last_load: dict[str, Any] | None = None
        self.started_at = time.time()
        self.feature_definition_version = feature_definition_version()
        self._load_lock = threading.Lock()
        self._counter_lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self._threads = self._start_scoring_threads()

    def _start_scoring_threads(self) -> list[threading.Thread]:
        """Each thread opens its engine connections before the service takes a request."""
        warm = threading.Barrier(self.config.workers + 1)
        threads = [
            threading.Thread(
                target=self._scoring_loop, args=(warm,), name=f"scoring-{n}", daemon=True
            )
            for n in range(self.config.workers)
        ]
        for thread in threads:
            thread.start()
        warm.wait(timeout=60)
        if not all(thread.is_alive() for thread in threads):
            raise RuntimeError("a scoring thread failed to open its feature engines")
        return threads

    # ---------------------------------------------------------------- models

    def load_model(self, model_dir: str | Path, version: str | int) -> dict[str, Any]:
        """Load into a standby slot, smoke-test, switch. Raises ModelLoadError (the active
        model keeps serving) or RuntimeError when another load is under way."""
        if not self._load_lock.acquire(blocking=False):
            raise RuntimeError("another model load is in progress")
        started = time.perf_counter()
        record = {"version": str(version), "model_dir": str(model_dir)}
        try:
            try:
                slot = load_slot(
                    model_dir,
                    str(version),
                    self.computer.names,
                    reasons_method=self.config.reasons,
                    top_reasons=self.config.top_reasons,
                    feature_policy=self.config.feature_policy,
                )
                smoke_test(slot, self._canary_features(), self.config.smoke_max_latency_ms)
            except Exception as error:
                message = str(error) if isinstance(error, ModelLoadError) else repr(error)
                self.last_load = {
                    **record,
                    "loaded": False,
                    "error": message,
                    "active_version": _version(self.active),
                    "seconds": round(time.perf_counter() - started, 3),
                }
                self._count("model_load_refused")
                log.warning("refused model %s from %s: %s", version, model_dir, message)
                raise ModelLoadError(message) from None
            previous = self.active
            self.active = slot  # the switch: one reference assignment, atomic for readers
            if previous is not None:
                self.previous = previous
            self.last_load = {
                **record,
                "loaded": True,
                "previous_version": _version(previous),
                "smoke": slot.smoke,
                "seconds": round(time.perf_counter() - started, 3),
            }
            log.info("serving model %s from %s", slot.version, model_dir)
            return dict(self.last_load)
        finally:
            self._load_lock.release()

    def load_from_registry(self, version: int | None = None) -> dict[str, Any]:
        """An approved registry version (the champion when None), its checksums verified.
        (A pending version can still be served deliberately, by its folder.)"""
        if not self.config.registry_root:
            raise ModelLoadError("no registry_root is configured")
        registry = LocalRegistryStore(self.config.registry_root, self.config.registry_group)
        try:
            if version is None:
                champion = registry.champion()
                if champion is None:
                    raise ModelLoadError("the registry has no approved version")
                version = champion.version
            entry = registry.get(version)
            if entry.status != ApprovalStatus.APPROVED:
                raise ModelLoadError(
                    f"registry version {version} is {entry.status.value}, not Approved"
                )
            folder = registry.load_model_dir(version)
        except RegistryError as error:
            raise ModelLoadError(f"registry: {error}") from None
        return self.load_model(folder, str(version))

    def rollback(self) -> dict[str, Any]:
        if self.previous is None:
            raise ModelLoadError("there is no previous model to roll back to")
        self.active, self.previous = self.previous, self.active
        return {"version": self.active.version, "previous_version": _version(self.previous)}

    def unload(self) -> dict[str, Any]:
        if self.active is not None:
            self.previous = self.active
        self.active = None
        return {"version": None, "previous_version": _version(self.previous)}

    def _canary_features(self) -> np.ndarray:
        """Realistic feature rows through the service's own feature engine: the last rows of
        a canary history (cards with 50 days of transactions, labelled terminals)."""
        rows = canary_rows()
        return self.computer.compute_rows(rows, [row[0] for row in rows[-16:]]).values

    # ---------------------------------------------------------------- scoring

    def _scoring_loop(self, warm: threading.Barrier) -> None:
        try:
            self.computer.warm_up()
        finally:
            with contextlib.suppress(threading.BrokenBarrierError):
                warm.wait(timeout=60)
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                answers = self.score_batch(batch)
            except Exception:
                log.exception("scoring failed")
                answers = [self.rules_answers(job, "internal_error") for job in batch]
            self.deliver(batch, answers)
            # Remembered once answered, on this thread: the next batch's windows see them.
            self.recent.add([t for job in batch if job.record for t in job.transactions])
            self._count("batches")

    def _next_batch(self) -> list[_Job] | None:
        with self._ready:
            while not self._queue and not self._closed:
                self._ready.wait()
            if self._closed:
                return None
            return take_batch(self._queue, self.config.batch_max_rows)

    def score_batch(self, batch: list[_Job]) -> list[list[dict[str, Any]] | None]:
        """Features of every transaction of the batch in one pass, then the model in one
        pass; each job's own answers (None for a job abandoned before it started)."""
        started = [not job.expired() for job in batch]  # read once: the clock moves on
        jobs = [job for job, live in zip(batch, started, strict=True) if live]
        scored = iter(self._score_jobs(jobs) if jobs else [])
        return [next(scored) if live else None for live in started]

    def _score_jobs(self, jobs: list[_Job]) -> list[list[dict[str, Any]]]:
        transactions = [t for job in jobs for t in job.transactions]
        try:
            features = self.computer.compute(transactions)
        except StoreUnavailableError:
            return [self.rules_answers(job, "online_store_unavailable") for job in jobs]
        except Exception:
            log.exception("feature computation failed")
            return [self.rules_answers(job, "feature_error") for job in jobs]
        start = 0
        for job in jobs:
            job.features = features.rows(start, start + len(job.transactions))
            start += len(job.transactions)
        if self.active is None:
            return [self.rules_answers(job, "no_model") for job in jobs]
        remaining_ms = (min(job.deadline for job in jobs) - time.perf_counter()) * 1000
        if self.active.estimate_ms(len(transactions)) <= remaining_ms:
            return self._model_answers(jobs, features.values)
        # The whole batch would overrun a budget: jobs that can afford the model alone get
        # it, one at a time; the others get the rules (with their features).
        results = []
        for job in jobs:
            slot = self.active
            remaining_ms = (job.deadline - time.perf_counter()) * 1000
            affordable = slot is not None and slot.estimate_ms(len(job.transactions)) <= (
                remaining_ms
            )
            if job.expired() or not affordable:
                results.append(self.rules_answers(job, "time_budget"))
            else:
                assert job.features is not None
                results.extend(self._model_answers([job], job.features.values))
        return results

    def _model_answers(self, jobs: list[_Job], values: np.ndarray) -> list[list[dict[str, Any]]]:
        """The active model's answers for the jobs' transactions (``values``, in order)."""
        slot = self.active
        if slot is None:
            return [self.rules_answers(job, "no_model") for job in jobs]
        try:
            scores = slot.predict(values)
            if not np.all(np.isfinite(scores)) or np.any(scores < 0) or np.any(scores > 1):
                raise ValueError(f"the model returned scores outside [0, 1]: {scores[:4]}")
            reasons = slot.reasons(values)
        except Exception:
            log.exception("model %s failed", slot.version)
            self._count("model_errors")
            return [self.rules_answers(job, "model_error") for job in jobs]
        self._count("model_answers", len(scores))
        if len(jobs) > 1:
            self._count("batched_requests", len(jobs))
        results, start = [], 0
        for job in jobs:
            end = start + len(job.transactions)
            results.append(
                [
                    {
                        "transaction_id": t.transaction_id,
                        "score": float(score),
                        "decision": "fraud" if score >= slot.threshold else "genuine",
                        "threshold": slot.threshold,
                        "reasons": reason,
                        "model_version": slot.version,
                        "fallback": False,
                        "fallback_reason": None,
                    }
                    for t, score, reason in zip(
                        job.transactions, scores[start:end], reasons[start:end], strict=True
                    )
                ]
            )
            start = end
        return results

    def rules_answers(self, job: _Job, reason: str) -> list[dict[str, Any]]:
        self._count(f"fallback_{reason}", len(job.transactions))
        return rules_answers(self.rules, job.transactions, job.features, reason)

    def submit(self, job: _Job) -> None:
        """Queue a job for the scoring threads (any thread)."""
        with self._ready:
            self._queue.append(job)
            self._ready.notify()

    def active_version(self) -> str | None:
        return _version(self.active)

    def refresh_store(self) -> dict[str, Any]:
        """Look for a newer online store file now."""
        changed = self.store.refresh(force=True)
        return {"changed": changed, **self.store.status()}

    # ---------------------------------------------------------------- status

    def _count(self, name: str, amount: int = 1) -> None:
        with self._counter_lock:
            self.counters[name] += amount

    def status(self) -> dict[str, Any]:
        return {
            "active": self.active.status() if self.active else None,
            "previous_version": _version(self.previous),
            "last_load": self.last_load,
            "online_store": self.store.status(),
            "recent_events": len(self.recent),
            "features": self.computer.status(),
            "feature_definition_version": self.feature_definition_version,
            "rules": {"version": self.rules.version, **self.rules.as_dict()},
            "settings": {
                "budget_ms": self.config.budget_ms,
                "budget_ms_per_extra_row": self.config.budget_ms_per_extra_row,
                "max_body_bytes": self.config.max_body_bytes,
                "max_rows": self.config.max_rows,
                "reasons": self.config.reasons,
                "feature_policy": self.config.feature_policy,
                "scoring_process": self.config.scoring_process,
                "workers": self.config.workers,
                "batch_max_rows": self.config.batch_max_rows,
                "registry_root": self.config.registry_root,
            },
            "counters": dict(self.counters),
            "uptime_seconds": round(time.time() - self.started_at, 1),
        }

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()


def rules_answers(
    rules: RuleSet,
    transactions: list[Transaction],
    features: FeatureMatrix | None,
    reason: str,
) -> list[dict[str, Any]]:
    """The rules' answers, on the transactions' features when they were computed, else on
    the amount alone."""
    score_by_rule = {rule.name: rule.score for rule in rules.rules}
    answers = []
    for index, t in enumerate(transactions):
        values = features.row(index) if features is not None else {"tx_amount": t.tx_amount}
        answer = rules.evaluate(values)
        answers.append(
            {
                "transaction_id": t.transaction_id,
                "score": answer.score,
                "decision": "fraud" if answer.decision else "genuine",
                "threshold": rules.threshold,
                "reasons": [{"rule": n, "score": score_by_rule[n]} for n in answer.reasons],
                "model_version": None,
                "rules_version": rules.version,
                "fallback": True,
                "fallback_reason": reason,
            }
        )
    return answers


def budget_deadline(config: ServingConfig, arrived: float, rows: int) -> float:
    budget_ms = config.budget_ms + config.budget_ms_per_extra_row * (rows - 1)
    return arrived + budget_ms / 1000


def start_service(config: ServingConfig, deliver: Deliver = answer_each) -> ScoringService:
    """The service with its initial model (``config.model_dir`` or the registry's champion;
    one that fails to load leaves the rules answering, and ``/admin/status`` says why)."""
    service = ScoringService(config, deliver)
    _initial_model(service)
    freeze_long_lived()
    return service


def freeze_long_lived() -> None:
    """Keep everything allocated so far (the imported libraries, the model, the engines),
    which lives as long as the process, out of the garbage collector's full collections:
    they otherwise stop the process for 50-260 ms every few hundred requests (the HTTP front's
    too: 201 and 262 ms measured at 50 clients before it froze its start-up objects)."""
    gc.collect()
    gc.freeze()


class InProcessScoring:
    """The app's scoring backend when the service runs in the HTTP process itself."""

    def __init__(self, service: ScoringService) -> None:
        self.service = service
        self.config = service.config

    async def score(
        self, transactions: list[Transaction], arrived: float, record: bool, features: bool
    ) -> tuple[list[dict[str, Any]], FeatureMatrix | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[dict[str, Any]] | None] = loop.create_future()

        def reply(answers: list[dict[str, Any]] | None) -> None:
            loop.call_soon_threadsafe(_resolve, future, answers)

        job = _Job(
            transactions, budget_deadline(self.config, arrived, len(transactions)), record, reply
        )
        self.service.submit(job)
        # The budget is a loop timer: wait_for(shield(...)) would cost a task and a future
        # more per request.
        timer = loop.call_later(
            max(job.deadline - time.perf_counter(), 0.0), _resolve, future, None
        )
        try:
            answers = await future
        finally:
            timer.cancel()
        if answers is None:  # the deadline passed first: the rules answer
            answers = self.service.rules_answers(job, "time_budget")
        return answers, job.features

    async def call(self, method: str, *args: Any) -> Any:
        """One of the service's admin methods, on a worker thread (a load takes seconds)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None, functools.partial(getattr(self.service, method), *args)
        )

    def count(self, name: str, amount: int = 1) -> None:
        self.service._count(name, amount)

    def close(self) -> None:
        self.service.close()


ADMIN_METHODS = frozenset(
    {
        "status",
        "load_model",
        "load_from_registry",
        "rollback",
        "unload",
        "refresh_store",
        "active_version",
    }
)
"""What the HTTP front may ask of the service (``InProcessScoring.call`` and the scoring
process alike)."""


def create_app(config: ServingConfig | None = None) -> ScoringApp:
    """The ASGI app, its scoring in this process or, with ``scoring_process``, in a child
    process of its own (``serving.scoring_process``)."""
    config = config or ServingConfig()
    if config.scoring_process:
        from fraud_orchestration.serving.scoring_process import ScoringProcess

        return ScoringApp(ScoringProcess(config))
    return ScoringApp(InProcessScoring(start_service(config)))


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Response(NamedTuple):
    """An answer: its status, body and raw headers (``content-length`` and ``content-type``
    included)."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


class _Request:
    """What the handlers read of an HTTP request: the first value of a repeated header, the
    last of a repeated query parameter, the body through ``receive``."""

    __slots__ = ("headers", "query", "receive")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.headers: dict[bytes, bytes] = dict(reversed(scope["headers"]))
        query = scope["query_string"].decode("latin-1")
        self.query = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        self.receive = receive

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None


Handler = Callable[[_Request], Awaitable[Response]]


class _Disconnected(Exception):
    """The client went away before its request body arrived: there is no one to answer."""


class ScoringApp:
    """The scoring service as a plain ASGI 3 app: a web framework's middleware and request
    objects cost 0.15-0.25 ms of CPU per request, against the ~0.7 ms in all that p99 < 10 ms
    at 10 concurrent clients allows (``BENCHMARKS.md``)."""

    def __init__(self, backend: InProcessScoring | ScoringProcess) -> None:
        self.backend = backend
        self.config = backend.config
        self.routes: dict[str, tuple[str, Handler]] = {
            "/ping": ("GET", self.ping),
            "/invocations": ("POST", self.invocations),
            "/admin/status": ("GET", self.admin_status),
            "/admin/load": ("POST", self.admin_load),
            "/admin/rollback": ("POST", self.admin_rollback),
            "/admin/unload": ("POST", self.admin_unload),
            "/admin/refresh-store": ("POST", self.admin_refresh_store),
        }

    @property
    def service(self) -> ScoringService:
        """The service itself, when it runs in this process (tests reach into it)."""
        if not isinstance(self.backend, InProcessScoring):
            raise AttributeError("the service runs in the scoring process")
        return self.backend.service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})  # the server answers 403

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                freeze_long_lived()  # the server's own start-up objects too
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.backend.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        route = self.routes.get(path)
        if route is None:
            response = _error(404, "not_found", f"there is no endpoint {path[:100]!r}")
        elif scope["method"] != route[0]:
            response = _error(
                405, "method_not_allowed", f"{path} answers {route[0]}", {"allow": route[0]}
            )
        else:
            try:
                refusal = _admin_refusal(scope, self.config) if path.startswith("/admin/") else None
                response = refusal or await route[1](_Request(scope, receive))
            except _Disconnected:
                return
            except Exception:
                log.exception("%s %s failed", scope["method"], path)
                response = _error(500, "internal_error", "the service failed; its log says why")
        await send(
            {"type": "http.response.start", "status": response.status, "headers": response.headers}
        )
        await send({"type": "http.response.body", "body": response.body})

    async def ping(self, _: _Request) -> Response:
        version = await self.backend.call("active_version")
        return _json({"status": "ok", "model_version": version, "fallback_only": version is None})

    async def invocations(self, request: _Request) -> Response:
        arrived = time.perf_counter()
        backend, config = self.backend, self.config
        try:
            include = _flag(request.query.get("features"), "features")
            record = _flag(request.query.get("record", "true"), "record")
            body = await _read_body(request, config.max_body_bytes)
            parsed = parse_request(body, request.header(b"content-type"), config.max_rows)
        except RequestError as error:
            backend.count(f"rejected_{error.status}")
            return _json(error.as_json(), error.status)
        answers, features = await backend.score(parsed.transactions, arrived, record, include)
        if include:
            for index, answer in enumerate(answers):
                answer["features"] = (
                    {k: _finite(v) for k, v in features.row(index).items()}
                    if features is not None
                    else None
                )
        backend.count("requests")
        backend.count("transactions", len(answers))
        headers = {
            "x-scoring-ms": f"{(time.perf_counter() - arrived) * 1000:.3f}",
            "x-model-version": answers[0]["model_version"] or answers[0]["rules_version"],
        }
        if "text/csv" in (request.header(b"accept") or ""):
            return _response(_csv(answers).encode(), "text/csv; charset=utf-8", 200, headers)
        payload = answers[0] if parsed.single else {"predictions": answers}
        return _json(payload, headers=headers)

    async def admin_status(self, _: _Request) -> Response:
        return _json(await self.backend.call("status"))

    async def admin_load(self, request: _Request) -> Response:
        backend = self.backend
        try:
            command = _load_command(await _read_body(request, 64 * 1024))
        except RequestError as error:
            return _json(error.as_json(), error.status)
        try:
            if "model_dir" in command:
                version = command.get("version") or Path(command["model_dir"]).name
                outcome = await backend.call("load_model", command["model_dir"], version)
            else:
                outcome = await backend.call("load_from_registry", command.get("registry_version"))
        except ModelLoadError as error:
            return _json(
                {
                    "loaded": False,
                    "error": str(error),
                    "active_version": await backend.call("active_version"),
                },
                422,
            )
        except RuntimeError as error:
            return _json({"loaded": False, "error": str(error)}, 409)
        return _json(outcome)

    async def admin_rollback(self, _: _Request) -> Response:
        try:
            return _json(await self.backend.call("rollback"))
        except ModelLoadError as error:
            return _error(409, "no_previous_model", str(error))

    async def admin_unload(self, _: _Request) -> Response:
        return _json(await self.backend.call("unload"))

    async def admin_refresh_store(self, _: _Request) -> Response:
        return _json(await self.backend.call("refresh_store"))


def _initial_model(service: ScoringService) -> None:
    config = service.config
    try:
        if config.model_dir:
            version = config.model_version or Path(config.model_dir).name
            service.load_model(config.model_dir, version)
        elif config.registry_root:
            registry = LocalRegistryStore(config.registry_root, config.registry_group)
            if registry.champion() is not None:
                service.load_from_registry()
    except (ModelLoadError, RuntimeError) as error:
        log.error("starting without a model (the rules answer): %s", error)


async def _read_body(request: _Request, limit: int) -> bytes:
    declared = request.header(b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError(400, "invalid_body", "Content-Length is not a number") from None
        if size > limit:
            raise RequestError(
                413, "payload_too_large", f"the body is {size} bytes; at most {limit} are accepted"
            )
    chunks = []
    received = 0
    more = True
    while more:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise RequestError(
                413, "payload_too_large", f"the body exceeds {limit} bytes, the most accepted"
            )
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _load_command(body: bytes) -> dict[str, Any]:
    try:
        command = json.loads(body or b"{}")
    except ValueError:
        raise RequestError(400, "malformed_json", "the body must be a JSON object") from None
    if not isinstance(command, dict):
        raise RequestError(400, "invalid_body", "the body must be a JSON object")
    allowed = {"model_dir", "version", "registry_version", "champion"}
    unknown = sorted(set(command) - allowed)
    if unknown:
        raise RequestError(400, "invalid_body", f"unknown fields {unknown}; use {sorted(allowed)}")
    sources = [key for key in ("model_dir", "registry_version", "champion") if key in command]
    if len(sources) != 1:
        raise RequestError(
            400, "invalid_body", "give exactly one of model_dir, registry_version or champion"
        )
    if "model_dir" in command and not isinstance(command["model_dir"], str):
        raise RequestError(400, "invalid_body", "model_dir must be a string")
    if "version" in command and not isinstance(command["version"], str | int):
        raise RequestError(400, "invalid_body", "version must be a string or an integer")
    if "registry_version" in command and (
        isinstance(command["registry_version"], bool)
        or not isinstance(command["registry_version"], int)
    ):
        raise RequestError(400, "invalid_body", "registry_version must be an integer")
    if "champion" in command and command["champion"] is not True:
        raise RequestError(400, "invalid_body", "champion must be true")
    return command


def _admin_refusal(scope: Scope, config: ServingConfig) -> Response | None:
    if not config.admin:
        return _error(404, "not_found", "admin endpoints are disabled")
    client = scope.get("client")
    if client is None or client[0] not in LOOPBACK:
        return _error(403, "forbidden", "admin endpoints answer loopback clients only")
    return None


def _flag(value: str | None, name: str) -> bool:
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no", ""):
        return False
    raise RequestError(400, "invalid_query", f"{name} must be true or false, got {value[:20]!r}")


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
"""Built once: ``json.dumps`` with these arguments builds an encoder on every call."""


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = _ENCODER.encode(body).encode()
    return _response(content, JSON, status, headers)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": code, "message": message}, status, headers)


def _response(
    body: bytes, content_type: str, status: int, headers: dict[str, str] | None
) -> Response:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    raw.append((b"content-length", str(len(body)).encode()))
    raw.append((b"content-type", content_type.encode()))
    return Response(status, body, raw)


def _csv(answers: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["transaction_id", "score", "decision", "model_version", "fallback", "reasons"])
    for a in answers:
        reasons = "|".join(r.get("feature") or r.get("rule") for r in a["reasons"])
        writer.writerow(
            [
                a["transaction_id"],
                a["score"],
                a["decision"],
                a["model_version"] or "",
                str(a["fallback"]).lower(),
                reasons,
            ]
        )
    return out.getvalue()


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def _version(slot: ModelSlot | None) -> str | None:
    return slot.version if slot is not None else None


def _resolve(future: asyncio.Future, answers: list[dict[str, Any]] | None) -> None:
    if not future.done():
        future.set_result(answers)


__all__ = ["ScoringApp", "ScoringService", "ServingConfig", "create_app"]
