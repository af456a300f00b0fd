"""Security: the service binds loopback by default and limits body size (against the real
process), nothing is ever unpickled, and no secret reaches a log. Checksum refusal is
tests/reliability/test_retries.py::test_a_tampered_model_is_refused_at_once (through the
deployment asset) beside tests/modeling/test_model_registry.py and
tests/serving/test_blue_green.py::test_registry_champion_and_a_tampered_version."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fraud_orchestration.resources.endpoint import LocalEndpoint
from fraud_orchestration.serving.server import DEFAULT_HOST
from tests.reliability.conftest import FAKE_SECRET
from tests.reliability.support import REPO

pytestmark = pytest.mark.reliability

UNPICKLING = re.compile(
    r"pickle\.loads?\(|import pickle|joblib\.load|import joblib|cloudpickle|\bdill\b|read_pickle|"
    r"allow_pickle\s*=\s*True|torch\.load|shelve|marshal\.loads?"
)


def listening_addresses(port: int) -> set[str]:
    """Local addresses of sockets listening (state 0A) on ``port``, from /proc/net/tcp."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_the_service_binds_loopback_by_default(service) -> None:
    port = int(service.url.rsplit(":", 1)[1])
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, started without --host
    assert DEFAULT_HOST == "127.0.0.1"
    assert LocalEndpoint.model_fields["host"].default == "127.0.0.1"


def test_the_real_process_limits_the_body_size(service) -> None:
    big = b'{"pad": "' + b"x" * (2 << 20) + b'"}'
    url = f"{service.url}/invocations"
    headers = {"content-type": "application/json"}
    declared = httpx.post(url, content=big, headers=headers, timeout=60)
    streamed = httpx.post(url, content=iter([big[:65536]] * 40), headers=headers, timeout=60)
    for response in (declared, streamed):
        assert response.status_code == 413 and "bytes" in response.json()["message"]
    assert httpx.get(f"{service.url}/ping", timeout=10).status_code == 200


def test_nothing_is_ever_unpickled() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted((REPO / "fraud_orchestration").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if UNPICKLING.search(line)
    ]
    assert offenders == []


def test_no_secret_reaches_a_log(tmp_path, service) -> None:
    """A fake AWS secret in the environment of a CLI command, a Dagster materialization (its
    compute logs and event log under DAGSTER_HOME) and the scoring process (its log)."""
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "FRAUD_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "AWS_ACCESS_KEY_ID": "AKIARELIABILITYTEST",
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "AWS_SESSION_TOKEN": FAKE_SECRET + "TOKEN",
    }
    (tmp_path / "dagster").mkdir()
    bin_dir = Path(sys.executable).parent
    commands = [
        [str(bin_dir / "fraud-orchestration"), "simulate", "--days", "1", "--customers", "50"],
        [str(bin_dir / "dagster"), "asset", "materialize", "-m", "fraud_orchestration.definitions"]
        + ["--select", "raw_transactions", "--partition", "2018-04-01"],
    ]
    captured = ""
    for command in commands:
        run = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stderr[-2000:]
        captured += run.stdout + run.stderr
    assert FAKE_SECRET not in captured
    for path in [*tmp_path.rglob("*"), service.log]:
        if path.is_file():
            assert FAKE_SECRET.encode() not in path.read_bytes(), path
