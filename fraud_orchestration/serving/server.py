"""Run the scoring service with uvicorn, and talk to it.

``serve()`` binds 127.0.0.1 by default (a SageMaker container passes ``host="0.0.0.0"``,
``port=8080``) and serves the registry's champion when there is one, else the rules. One
worker process: the recent-events buffer lives in the process (see ``serving.features``).

    python -m fraud_orchestration.serving.server --home .fraud --port 8080

Client helpers: :func:`score_one` (the CLI's ``score``), :func:`admin_load` and
:func:`admin_status` (what a blue/green controller calls).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from fraud_orchestration.resources.feature_store import LocalFeatureStore
from fraud_orchestration.serving.app import ScoringService, ServingConfig, create_app
from fraud_orchestration.serving.rules import RuleSet
from fraud_orchestration.settings import SERVING_ENGINES

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def default_paths(home: str | Path) -> dict[str, str]:
    """Where the local environment keeps the registry and the online store under FRAUD_HOME
    (as ``resources.environments`` configures them)."""
    home = Path(home)
    store = LocalFeatureStore(root=str(home / "feature_store"))
    return {"registry_root": str(home / "registry"), "online_store_path": str(store.online_path)}


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    registry_root: str | None = None,
    online_store_path: str | None = None,
    *,
    model_dir: str | None = None,
    rules_path: str | None = None,
    log_level: str = "info",
    **settings: Any,
) -> None:
    """Serve until interrupted. ``settings`` are :class:`ServingConfig` fields."""
    config = build_config(registry_root, online_store_path, model_dir, rules_path, **settings)
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        workers=1,
        log_level=log_level,
        access_log=False,
        proxy_headers=False,  # the admin endpoints' loopback check must see the real peer
        timeout_graceful_shutdown=5,
    )


def build_config(
    registry_root: str | None = None,
    online_store_path: str | None = None,
    model_dir: str | None = None,
    rules_path: str | None = None,
    **settings: Any,
) -> ServingConfig:
    config = ServingConfig(
        registry_root=registry_root, online_store_path=online_store_path, model_dir=model_dir
    )
    if rules_path:
        settings["rules"] = RuleSet.from_dict(json.loads(Path(rules_path).read_text()))
    return replace(config, **settings)


class BackgroundServer:
    """uvicorn on a free loopback port in a daemon thread (tests, benchmarks)."""

    def __init__(self, config: ServingConfig, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.app = create_app(config)
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=self.host,
                port=self.port,
                log_level="warning",
                access_log=False,
                proxy_headers=False,
                lifespan="on",
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def service(self) -> ScoringService:
        return self.app.service

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the scoring server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(config: ServingConfig) -> Iterator[BackgroundServer]:
    with BackgroundServer(config) as server:
        yield server


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def score_one(
    url: str, transaction: dict[str, Any], timeout: float = 5.0, features: bool = False
) -> dict[str, Any]:
    """POST one transaction to ``<url>/invocations``; the answer, or an error naming the
    service's message."""
    response = httpx.post(
        f"{url.rstrip('/')}/invocations",
        json=transaction,
        params={"features": "true"} if features else None,
        timeout=timeout,
    )
    if response.status_code != 200:
        raise ValueError(f"{response.status_code}: {_message(response)}")
    return response.json()


def admin_load(
    url: str,
    model_dir: str | None = None,
    version: str | int | None = None,
    *,
    registry_version: int | None = None,
    champion: bool = False,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Ask the service to load a model into its standby slot and switch if it passes the
    smoke test. Returns the outcome (``loaded`` says whether it switched)."""
    if model_dir is not None:
        body: dict[str, Any] = {"model_dir": str(model_dir)}
        if version is not None:
            body["version"] = version
    elif registry_version is not None:
        body = {"registry_version": registry_version}
    elif champion:
        body = {"champion": True}
    else:
        raise ValueError("give model_dir, registry_version or champion=True")
    response = httpx.post(f"{url.rstrip('/')}/admin/load", json=body, timeout=timeout)
    if response.status_code not in (200, 409, 422):
        raise ValueError(f"{response.status_code}: {_message(response)}")
    return response.json()


def admin_status(url: str, timeout: float = 5.0) -> dict[str, Any]:
    response = httpx.get(f"{url.rstrip('/')}/admin/status", timeout=timeout)
    response.raise_for_status()
    return response.json()


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)
    return str(body)[:300]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the fraud model (SageMaker contract).")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--home", default=None, help="FRAUD_HOME: registry and online store")
    parser.add_argument("--registry-root", default=None)
    parser.add_argument("--online-store", default=None)
    parser.add_argument("--model-dir", default=None, help="serve this folder, not the champion")
    parser.add_argument("--rules", default=None, help="a JSON rule set for the fallback")
    parser.add_argument("--budget-ms", type=float, default=200.0)
    parser.add_argument(
        "--budget-ms-per-extra-row",
        type=float,
        default=2.0,
        help="extra budget for each transaction of a list after the first",
    )
    parser.add_argument("--engine", choices=SERVING_ENGINES, default="auto")
    parser.add_argument("--reasons", choices=("approx", "exact", "none"), default="approx")
    parser.add_argument(
        "--workers", type=int, default=ServingConfig.workers, help="scoring threads"
    )
    parser.add_argument(
        "--scoring-process",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="score in a child process, beside the HTTP front (the default), or in its own",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    paths = default_paths(args.home) if args.home else {}
    serve(
        host=args.host,
        port=args.port,
        registry_root=args.registry_root or paths.get("registry_root"),
        online_store_path=args.online_store or paths.get("online_store_path"),
        model_dir=args.model_dir,
        rules_path=args.rules,
        log_level=args.log_level,
        budget_ms=args.budget_ms,
        budget_ms_per_extra_row=args.budget_ms_per_extra_row,
        engine=args.engine,
        reasons=args.reasons,
        workers=args.workers,
        scoring_process=args.scoring_process,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
