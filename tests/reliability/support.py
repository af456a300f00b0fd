"""Helpers shared by the reliability tier: child processes paused at a known point, then
killed with SIGKILL; deterministic tables to write; /proc readings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa

REPO = Path(__file__).resolve().parents[2]
DAY = date(2018, 4, 2)


def table(version: int, rows: int = 20_000) -> pa.Table:
    """A deterministic partition; ``version`` tells two writes of the same day apart."""
    frame = pd.DataFrame(
        {
            "transaction_id": range(rows),
            "tx_time_seconds": range(rows),
            "tx_amount": [float(i % 997) for i in range(rows)],
            "version": version,
        }
    )
    return pa.Table.from_pandas(frame, preserve_index=False)


def pause_here(flag: str | Path) -> None:
    """In a child: tell the parent where we are, then wait to be killed."""
    Path(flag).write_text(str(os.getpid()))
    while True:
        time.sleep(3600)


def python(*args: str, env: dict[str, str] | None = None, log: Path | None = None):
    """A child Python process in its own session, run from the repository."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_flag(flag: Path, process: subprocess.Popen, timeout: float = 180.0) -> None:
    """Block until the child has written ``flag`` (it is then paused at the chosen point)."""
    deadline = time.monotonic() + timeout
    while not flag.exists():
        assert process.poll() is None, f"the child exited ({process.returncode}) before {flag}"
        assert time.monotonic() < deadline, f"the child never reached {flag.name}"
        time.sleep(0.05)


def kill9(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


def crash_at(scenario: str, root: Path, flag: Path, *extra: str) -> None:
    """Run ``crash_child`` until it pauses at ``scenario``, then SIGKILL it."""
    child = python("-m", "tests.reliability.crash_child", scenario, str(root), str(flag), *extra)
    try:
        wait_for_flag(flag, child)
    finally:
        kill9(child)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def hidden_leftovers(root: Path) -> list[Path]:
    """Temporary names a crash can leave: all hidden (dot) names, which readers skip."""
    return [p for p in root.rglob(".*") if p.name not in (".lock",)]


def wait_until_serving(url: str, process: subprocess.Popen, timeout: float = 180.0) -> None:
    """Block until the service process answers ``/ping`` (its start-up is slow on busy CPUs)."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"the service exited ({process.returncode})"
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"the service never answered on {url}"
        time.sleep(0.2)
