"""The scoring endpoint as the assets see it; the local class runs the service as a process.

Blue/green lives in the service: ``/admin/load`` loads a model into a standby slot, smoke-
tests it (canary requests and a latency check) and switches one reference only on success,
so a broken model leaves the previous one serving. This resource starts the process when
needed, asks for the switch, and keeps a small state file (what is deployed, and why the
last deployment was refused) that survives the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from dagster import ConfigurableResource
from pydantic import Field

from fraud_orchestration.atomic import atomic_write_bytes

CANARY = {
    "transaction_id": 1,
    "tx_datetime": "2018-04-01T12:00:00",
    "customer_id": 0,
    "terminal_id": 0,
    "tx_amount": 42.0,
}


class DeploymentError(Exception):
    """The endpoint refused the model; the previous model keeps serving."""


@dataclass(frozen=True)
class Deployment:
    version: int
    changed: bool
    detail: dict


@dataclass(frozen=True)
class Health:
    healthy: bool
    version: int | None
    p50_ms: float
    p99_ms: float
    failures: int
    fallback_answers: int
    message: str


class Endpoint(ConfigurableResource, ABC):
    @property
    @abstractmethod
    def url(self) -> str: ...

    @abstractmethod
    def deployed_version(self) -> int | None: ...

    @abstractmethod
    def deploy(self, version: int, model_dir: Path) -> Deployment:
        """Serve ``version``; a no-op when it already serves it. Raises DeploymentError."""

    @abstractmethod
    def probe(self, requests: int = 50) -> Health: ...


class LocalEndpoint(Endpoint):
    """The scoring service on 127.0.0.1, started as a separate process under ``home``."""

    home: str = Field(description="FRAUD_HOME: the registry and online store the service reads.")
    host: str = "127.0.0.1"
    port: int = 8080
    startup_timeout_seconds: float = 90.0
    latency_budget_ms: float = Field(default=200.0, description="Health fails above this p99.")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def _folder(self) -> Path:
        return Path(self.home) / "endpoint"

    def deployed_version(self) -> int | None:
        if not self._ping():
            return None
        active = httpx.get(f"{self.url}/admin/status", timeout=5).json().get("active")
        return int(active["version"]) if active else None

    def deploy(self, version: int, model_dir: Path) -> Deployment:
        self.start()
        if self.deployed_version() == version:
            return Deployment(version, changed=False, detail={"reason": "already serving"})
        response = httpx.post(
            f"{self.url}/admin/load",
            json={"model_dir": str(model_dir), "version": str(version)},
            timeout=120,
        )
        outcome = response.json()
        self._record(version, outcome)
        if response.status_code != 200 or not outcome.get("loaded"):
            raise DeploymentError(
                f"v{version} refused ({response.status_code}): {outcome.get('error', outcome)}; "
                f"v{outcome.get('active_version')} keeps serving"
            )
        return Deployment(version, changed=True, detail=outcome)

    def probe(self, requests: int = 50) -> Health:
        if not self._ping():
            return Health(False, None, 0.0, 0.0, requests, 0, f"no answer on {self.url}/ping")
        latencies, failures, fallbacks, reasons = [], 0, 0, set()
        with httpx.Client(timeout=5) as client:
            for number in range(requests):
                started = time.perf_counter()
                try:
                    answer = client.post(
                        f"{self.url}/invocations",
                        json={**CANARY, "transaction_id": number},
                        params={"record": "false"},  # canaries must not become card history
                    )
                except httpx.HTTPError:
                    failures += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    failures += 1
                elif answer.json().get("fallback"):
                    fallbacks += 1
                    reasons.add(answer.json().get("fallback_reason", "unknown"))
        latencies.sort()
        p50 = latencies[len(latencies) // 2] if latencies else 0.0
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
        version = self.deployed_version()
        healthy = failures == 0 and fallbacks == 0 and p99 <= self.latency_budget_ms
        message = (
            f"{requests} canary requests: {failures} failed, {fallbacks} answered by the "
            f"fallback{' (' + ', '.join(sorted(reasons)) + ')' if reasons else ''}, "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (budget {self.latency_budget_ms} ms)"
        )
        return Health(healthy, version, round(p50, 2), round(p99, 2), failures, fallbacks, message)

    def start(self) -> None:
        """Start the service process unless it already answers."""
        if self._ping():
            return
        self._folder.mkdir(parents=True, exist_ok=True)
        log = open(self._folder / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fraud_orchestration.serving.server",
                "--home",
                self.home,
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        (self._folder / "server.pid").write_text(str(process.pid))
        deadline = time.monotonic() + self.startup_timeout_seconds
        while not self._ping():
            if process.poll() is not None or time.monotonic() > deadline:
                raise DeploymentError(
                    f"the scoring service did not start on {self.url}; see {log.name}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        pid_file = self._folder / "server.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while self._ping() and time.monotonic() < deadline:
                time.sleep(0.1)
            os.killpg(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)

    def _ping(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ping", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _record(self, version: int, outcome: dict) -> None:
        state = {
            "requested_version": version,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "outcome": outcome,
        }
        atomic_write_bytes(self._folder / "last_deployment.json", json.dumps(state).encode())
