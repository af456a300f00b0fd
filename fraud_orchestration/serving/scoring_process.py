"""The scoring service in two processes: the HTTP front (uvicorn, parsing, validation, the
answers' JSON) and a scoring process of its own (online store, recent events, model slots,
the scoring thread and its dynamic batching, blue/green loads).

In one process the event loop and the scoring thread take turns under the GIL, so the
scoring thread, which bounds the throughput, waits for the event loop's turns. Split, each
half has a core of its own, at the price of a message each way per request. This is
how SageMaker's model servers split a front end from their workers.

The halves talk over one pipe in JSON arrays (never pickles: the project unpickles
nothing; floats round-trip exactly):

front -> scoring   ``["score", id, transactions, deadline, record, with_features]``
                   ``["call", id, method, args]``  (one of ``app.ADMIN_METHODS``)
                   ``["stop"]``
scoring -> front   ``["ready", feature_names, pid]`` or ``["failed", message]`` at start-up
                   ``["answers", [[id, answers, feature_rows | null], ...]]``  a batch's
                   ``["result", id, true, value]`` or ``["result", id, false, [error, message]]``

(``multiprocessing`` hands the child its ``ServingConfig`` at spawn, its own business.)

Deadlines are ``time.perf_counter`` values, the same clock (CLOCK_MONOTONIC) in both
processes: the scoring thread skips a job whose budget is spent, and the front answers it
with the rules on its own timer, as in one process (but on the amount alone: features the
scoring thread computed in time stay in the scoring process). Should the scoring process
die, the front answers every request with the rules (``fallback_reason:
scoring_unavailable``) and ``/admin/status`` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import multiprocessing
import os
import signal
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import numpy as np

from fraud_orchestration.serving.app import (
    ADMIN_METHODS,
    ServingConfig,
    _Job,
    budget_deadline,
    rules_answers,
    start_service,
)
from fraud_orchestration.serving.features import FeatureMatrix
from fraud_orchestration.serving.model import ModelLoadError
from fraud_orchestration.serving.schema import Transaction

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 300.0
"""Imports, the feature engines' warm-up and the initial model's smoke test."""
UNAVAILABLE = "scoring_unavailable"


class ScoringUnavailableError(RuntimeError):
    """The scoring process is gone."""


class ScoringFailedError(Exception):
    """An admin call failed in the scoring process for a reason other than the model."""


class ScoringProcess:
    """The HTTP front's handle on the scoring process: the app's scoring backend."""

    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        context = multiprocessing.get_context("spawn")  # never fork a threaded process
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_scoring_main, args=(config, child), name="fraud-scoring", daemon=True
        )
        self._process.start()
        child.close()
        ready = self._startup_message()
        self.feature_names: list[str] = ready[1]
        self.pid: int = ready[2]
        # From here on the event loop reads and writes the pipe (a socket pair) through an
        # asyncio protocol: a non-blocking socket, which Connection.recv_bytes cannot read.
        self._socket = socket.socket(fileno=os.dup(self._conn.fileno()))
        self._conn.close()
        self._transport: asyncio.Transport | None = None
        self._outbox: _Outbox | None = None
        self._connecting = asyncio.Lock()
        self._ids = itertools.count()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._counters: Counter[str] = Counter()
        self._gone: str | None = None

    def _startup_message(self) -> list[Any]:
        if not self._conn.poll(STARTUP_TIMEOUT_SECONDS):
            self._process.kill()
            raise RuntimeError(
                f"the scoring process did not start in {STARTUP_TIMEOUT_SECONDS:.0f} s"
            )
        try:
            message = _decode(self._conn.recv_bytes())
        except EOFError:
            self._process.join(5)
            raise RuntimeError(
                f"the scoring process exited at start-up (status {self._process.exitcode})"
            ) from None
        if message[0] != "ready":
            self._process.join(5)
            raise RuntimeError(f"the scoring process failed to start: {message[1]}")
        return message

    # ------------------------------------------------------------ the backend

    async def score(
        self, transactions: list[Transaction], arrived: float, record: bool, features: bool
    ) -> tuple[list[dict[str, Any]], FeatureMatrix | None]:
        deadline = budget_deadline(self.config, arrived, len(transactions))
        try:
            future = await self._request(("score", transactions, deadline, record, features))
        except ScoringUnavailableError:
            return self._rules(transactions, UNAVAILABLE), None
        loop = future.get_loop()
        timer = loop.call_later(max(deadline - time.perf_counter(), 0.0), _expire, future)
        try:
            outcome = await future
        finally:
            timer.cancel()
        if outcome is None:  # the budget ran out first (_expire) or the process died
            reason = UNAVAILABLE if self._gone else "time_budget"
            return self._rules(transactions, reason), None
        answers, rows = outcome
        matrix = (
            FeatureMatrix(self.feature_names, np.array(rows, dtype=np.float64))
            if rows is not None
            else None
        )
        return answers, matrix

    async def call(self, method: str, *args: Any) -> Any:
        """One of the service's admin methods, run in the scoring process."""
        if method not in ADMIN_METHODS:
            raise ValueError(f"{method!r} is not an admin method")
        if method == "active_version" and self._gone:
            return None
        if method == "status" and self._gone:
            return {"scoring_process": self._process_status(), "counters": dict(self._counters)}
        outcome = await (await self._request(("call", method, args)))
        if outcome is None:
            raise ScoringUnavailableError(f"the scoring process is gone: {self._gone}")
        ok, value = outcome
        if not ok:
            raise _error(*value)
        if method == "status":
            merged = Counter(value["counters"])
            merged.update(self._counters)
            value = {**value, "counters": dict(merged), "scoring_process": self._process_status()}
        return value

    def count(self, name: str, amount: int = 1) -> None:
        self._counters[name] += amount

    def close(self) -> None:
        """Ask the scoring process to stop; kill it if it does not within a few seconds."""
        if self._gone is None:
            self._gone = "the server stopped"
            frame = _frame(("stop",))
            with contextlib.suppress(OSError):
                if self._transport is not None:
                    self._transport.write(frame)  # an empty buffer: sent at once
                else:
                    self._socket.sendall(frame)
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        if self._transport is not None:
            self._transport.close()
        self._socket.close()

    # ------------------------------------------------------------ the pipe

    async def _request(self, message: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Send ``message`` (its id inserted second); the future its answer resolves."""
        if self._transport is None:
            await self._connect()
        if self._gone or self._outbox is None:
            raise ScoringUnavailableError(self._gone)
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        future.add_done_callback(lambda _: self._pending.pop(request_id, None))
        self._outbox.put(_frame((message[0], request_id, *message[1:])))
        return future

    async def _connect(self) -> None:
        """The pipe as a transport of the running loop; _Answers reads what comes back."""
        async with self._connecting:
            if self._transport is None and self._gone is None:
                loop = asyncio.get_running_loop()
                self._transport, _ = await loop.create_unix_connection(
                    lambda: _Answers(self), sock=self._socket
                )
                self._outbox = _Outbox(self._transport)

    def _received(self, message: list[Any]) -> None:
        if message[0] == "answers":  # a batch's: [[id, answers, rows], ...]
            for request_id, *outcome in message[1]:
                self._settle(request_id, outcome)
        else:  # ["result", id, ok, value]
            self._settle(message[1], message[2:])

    def _settle(self, request_id: int, outcome: Any) -> None:
        future = self._pending.get(request_id)
        if future is not None and not future.done():  # else the rules answered: no budget left
            future.set_result(outcome)

    def _lost(self, why: str) -> None:
        if self._gone is None:
            self._gone = why
            log.error("the scoring process is gone; the rules answer: %s", why)
        for future in list(self._pending.values()):
            if not future.done():
                future.set_result(None)

    def _rules(self, transactions: list[Transaction], reason: str) -> list[dict[str, Any]]:
        self.count(f"fallback_{reason}", len(transactions))
        return rules_answers(self.config.rules, transactions, None, reason)

    def _process_status(self) -> dict[str, Any]:
        return {"pid": self.pid, "alive": self._process.is_alive(), "gone": self._gone}


class _Outbox:
    """The front's messages to the scoring process, written once per turn of the event loop:
    the requests one turn reads wake the scoring process once, not once each."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self.transport = transport
        self.frames: list[bytes] = []

    def put(self, frame: bytes) -> None:
        if not self.frames:
            asyncio.get_running_loop().call_soon(self.flush)
        self.frames.append(frame)

    def flush(self) -> None:
        frames, self.frames = self.frames, []
        if not self.transport.is_closing():
            self.transport.write(b"".join(frames))


class _Answers(asyncio.Protocol):
    """Cuts the bytes from the scoring process into messages (see HEADER)."""

    def __init__(self, backend: ScoringProcess) -> None:
        self.backend = backend
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        for message in _take_messages(self.buffer):
            self.backend._received(message)

    def connection_lost(self, error: Exception | None) -> None:
        process = self.backend._process
        self.backend._lost(f"the pipe closed ({error!r}); exit status {process.exitcode}")


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


# ---------------------------------------------------------------- the scoring process


def _scoring_main(config: ServingConfig, conn: Connection) -> None:
    """The scoring process: the service, fed from the pipe until the front stops it."""
    # Warnings and errors, as the HTTP process shows its service's (refused models, failures).
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s scoring: %(message)s")
    # A signal to the whole process group (Ctrl+C, LocalEndpoint.stop) is the front's to
    # handle: its shutdown stops this process through the pipe, or the pipe's end does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        payload = _encode(message)
        with lock:
            conn.send_bytes(payload)

    def deliver(batch: list[_Job], answers: list[list[dict[str, Any]] | None]) -> None:
        """One message for the whole batch: a pipe write wakes the front once."""
        replies = [
            (
                job.reply.request_id,
                job_answers,
                job.features.values.tolist()
                if job.reply.with_features and job.features is not None
                else None,
            )
            for job, job_answers in zip(batch, answers, strict=True)
            if job_answers is not None  # skipped past its deadline: the front has answered
        ]
        if replies:
            with contextlib.suppress(OSError):  # the front is gone
                send(("answers", replies))

    try:
        service = start_service(config, deliver)
    except Exception as error:
        log.exception("the scoring service failed to start")
        send(("failed", repr(error)))
        return
    send(("ready", service.computer.names, os.getpid()))
    try:
        for message in _received_messages(conn):
            if message[0] == "score":
                _, request_id, rows, deadline, record, with_features = message
                transactions = [Transaction(*row) for row in rows]
                reply = _Reply(request_id, with_features)
                service.submit(_Job(transactions, deadline, record, reply))
            elif message[0] == "call":  # a thread each (a load takes seconds), never waited for
                threading.Thread(
                    target=_admin_call, args=(service, send, *message[1:]), daemon=True
                ).start()
            elif message[0] == "stop":
                return
    finally:
        service.close()


class _Reply(NamedTuple):
    """Where a job's answers go: the front's request, with its features when asked for."""

    request_id: int
    with_features: bool


def _admin_call(service: Any, send: Any, request_id: int, method: str, args: list) -> None:
    try:
        if method not in ADMIN_METHODS:
            raise ValueError(f"{method!r} is not an admin method")
        outcome: tuple[bool, Any] = (True, getattr(service, method)(*args))
    except Exception as error:  # the front raises it again (see _error)
        outcome = (False, [type(error).__name__, str(error)])
    with contextlib.suppress(OSError):  # the front is gone
        send(("result", request_id, *outcome))


def _error(name: str, message: str) -> Exception:
    """An admin call's error, raised again in the front: a refused model stays a
    ModelLoadError (a 422), a concurrent load a RuntimeError (a 409); anything else is a
    failure of the service (a 500)."""
    if name == "ModelLoadError":
        return ModelLoadError(message)
    if name == "RuntimeError":
        return RuntimeError(message)
    return ScoringFailedError(f"{name}: {message}")


_ENCODER = json.JSONEncoder(separators=(",", ":"))
RECEIVE_BYTES = 1 << 16
HEADER = struct.Struct("!i")
"""The length before each message: ``multiprocessing.Connection``'s framing, with which the
scoring process reads and writes its end (messages stay far below its 2 GiB limit)."""


def _encode(message: tuple[Any, ...]) -> bytes:
    return _ENCODER.encode(message).encode()


def _frame(message: tuple[Any, ...]) -> bytes:
    payload = _encode(message)
    return HEADER.pack(len(payload)) + payload


def _decode(payload: bytes) -> list[Any]:
    return json.loads(payload)


def _take_messages(buffer: bytearray) -> list[list[Any]]:
    """The whole messages at the start of ``buffer``, removed from it (a partial one stays)."""
    messages = []
    start = 0
    while len(buffer) - start >= HEADER.size:
        (size,) = HEADER.unpack_from(buffer, start)
        end = start + HEADER.size + size
        if len(buffer) < end:
            break
        messages.append(_decode(bytes(buffer[start + HEADER.size : end])))
        start = end
    del buffer[:start]
    return messages


def _received_messages(conn: Connection) -> Iterator[list[Any]]:
    """The front's messages until it stops or goes, read as they come: one read takes every
    message already sent (``Connection.recv_bytes`` would take one, in two reads)."""
    with socket.socket(fileno=os.dup(conn.fileno())) as pipe:
        buffer = bytearray()
        while True:
            try:
                data = pipe.recv(RECEIVE_BYTES)
            except OSError:
                return  # the front is gone
            if not data:
                return
            buffer += data
            yield from _take_messages(buffer)
