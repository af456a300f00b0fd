"""The reliability tier reuses the serving tier's session lake (simulated days, offline
features, an online store and a tiny model) and runs one real scoring process for the
fuzzing, load, soak and security tests (its start-up costs ~15 s on busy CPUs)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import pytest

from tests.conftest import free_port
from tests.reliability.support import python, wait_until_serving
from tests.serving.conftest import lake  # noqa: F401 - a fixture, re-exported for this tier

FAKE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYRELIABILITYKEY"
"""A fake AWS secret key put in the environment of every process the tier starts."""


@dataclass(frozen=True)
class Service:
    url: str
    process: Popen
    fail_flag: Path
    """While this file exists, the service's model raises on every prediction."""
    log: Path


@pytest.fixture(scope="session")
def service(lake, tmp_path_factory) -> Iterator[Service]:  # noqa: F811 - the fixture above
    """``python -m tests.reliability.faulty_server``: the real service, default host, with the
    tiny model and the online store, a fake AWS secret in its environment."""
    home = tmp_path_factory.mktemp("service")
    port = free_port()
    log = home / "service.log"
    process = python(
        "-m",
        "tests.reliability.faulty_server",
        *("--port", str(port), "--online-store", str(lake.store_path)),
        *("--model-dir", str(lake.model_dir), "--budget-ms", "2000", "--log-level", "info"),
        env={
            "RELIABILITY_FAIL_FLAG": str(home / "fail"),
            "AWS_ACCESS_KEY_ID": "AKIARELIABILITYTEST",
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        },
        log=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process)
        yield Service(url, process, home / "fail", log)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
