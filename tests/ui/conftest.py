"""The UI tier: ``dagster dev`` over a small demo instance, driven by headless Chromium.

One session-scoped fixture runs a small ``fraud-orchestration demo`` into a temporary
``FRAUD_HOME``, then starts ``dagster dev`` (webserver and daemon) on 127.0.0.1 over it;
Playwright drives Debian's ``/usr/bin/chromium`` (``scripts/install_chromium.sh``), so no
browser download is needed. Screenshots go to ``test-artifacts/ui/``, together with the demo
and ``dagster dev`` logs and, for a failed test, a screenshot and a Playwright trace.

Environment knobs (all optional):

``FRAUD_UI_DEMO_DAYS``  days the demo simulates (default 42: the fewest with which the demo
                        trains a model: 28 days of features before the first retraining, then
                        14 scored days).
``FRAUD_UI_HOME``       reuse this ``FRAUD_HOME`` (the demo runs only when it has no
                        ``dagster_home`` yet): for iterating on the UI tests locally. The tests
                        launch a run and toggle schedules in it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ui.support import (
    ARTIFACTS,
    BIN,
    CHROMIUM,
    CHROMIUM_ARGS,
    DEMO_DAYS,
    DEMO_START,
    DEMO_TIMEOUT,
    DEMO_WORLD,
    REPO_ROOT,
    STARTUP_TIMEOUT,
    UI_TIMEOUT_MS,
    DagsterUI,
    wait_until,
)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item, so that fixtures can tell a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { repositories { name } }
          ... on PythonError { message stack }
        }
      }
    }
  }
}
"""

DAEMONS_QUERY = """
query Daemons {
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}
"""

MODEL_QUERY = """
query Model {
  assetOrError(assetKey: {path: ["fraud_model"]}) {
    ... on Asset { assetMaterializations(limit: 1) { runId } }
  }
}
"""


def _environment(home: Path, endpoint_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FRAUD_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster_home"),
        FRAUD_ENV="local",
        FRAUD_FEATURE_ENGINE="duckdb",
        FRAUD_START_DATE=DEMO_START,
        # The demo deploys its model to a local scoring service: not on the shared 8080.
        FRAUD_ENDPOINT_PORT=str(endpoint_port),
        PYTHONUNBUFFERED="1",
    )
    return env


def _stop_scoring_service(home: Path) -> None:
    """The local endpoint runs in its own session and outlives the run that started it."""
    pid_file = home / "endpoint" / "server.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            os.killpg(pid, 0)  # raises ProcessLookupError once the group is gone
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _run_demo(home: Path, env: dict[str, str]) -> None:
    log = ARTIFACTS / "demo.log"
    command = [
        str(BIN / "fraud-orchestration"),
        "demo",
        "--days",
        str(DEMO_DAYS),
        "--start",
        DEMO_START,
        *DEMO_WORLD,
    ]
    started = time.monotonic()
    with log.open("w") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=DEMO_TIMEOUT,
            check=False,
        )
        out.write(f"\n[exit status {result.returncode} after {time.monotonic() - started:.0f} s]\n")
    output = log.read_text(errors="replace")
    # 1 means "some asset check failed", which the small drifting world may well produce;
    # a crash exits with 1 too, after a traceback. (The fixture then checks for a model.)
    if result.returncode not in (0, 1) or "Traceback (most recent call last)" in output:
        pytest.fail(
            f"the demo failed (exit status {result.returncode}); {log}:\n{_tail(log)}",
            pytrace=False,
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _default_signals() -> None:
    # A shell that runs ``make test`` in the background starts it with SIGINT ignored, and
    # ``dagster dev`` maps SIGTERM onto the SIGINT handler: give it the default handlers back
    # so that it shuts down (webserver, daemon, code server) when the session ends.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _start_dagster_dev(env: dict[str, str], port: int, log) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(BIN / "dagster"),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_default_signals,
    )


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (graceful: ``dagster dev`` stops its services), then kill the whole group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=90)
    # Whatever is left in the session (a run worker, a code server): kill it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)


def _wait_until_ready(ui: DagsterUI, process: subprocess.Popen, log_path: Path) -> None:
    def alive() -> None:
        if process.poll() is not None:
            pytest.fail(
                f"dagster dev exited with status {process.returncode}; "
                f"{log_path}:\n{_tail(log_path)}",
                pytrace=False,
            )

    def answering() -> bool:
        alive()
        return httpx.get(ui.url("/server_info"), timeout=10).status_code == 200

    wait_until(answering, STARTUP_TIMEOUT, f"{ui.base_url}/server_info")

    def loaded() -> bool:
        alive()
        entries = ui.graphql(WORKSPACE_QUERY)["workspaceOrError"].get("locationEntries", [])
        for entry in entries:
            location = entry["locationOrLoadError"]
            if location and location["__typename"] == "PythonError":
                pytest.fail(
                    f"the code location {entry['name']} failed to load: {location['message']}\n"
                    f"{''.join(location['stack'])}",
                    pytrace=False,
                )
            if entry["loadStatus"] == "LOADED" and location:
                ui.location = entry["name"]
                ui.repository = location["repositories"][0]["name"]
                return True
        return False

    wait_until(loaded, STARTUP_TIMEOUT, "the code location to load")

    def daemon_healthy() -> bool:
        alive()
        statuses = ui.graphql(DAEMONS_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
        return all(status["healthy"] for status in statuses if status["required"])

    wait_until(daemon_healthy, STARTUP_TIMEOUT, "the dagster daemon to report healthy")


@pytest.fixture(scope="session")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterUI]:
    """A ``dagster dev`` over a small demo instance; yields its base URL and a GraphQL client."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    reused = os.environ.get("FRAUD_UI_HOME")
    home = Path(reused).resolve() if reused else tmp_path_factory.mktemp("ui") / "fraud_home"
    env = _environment(home, endpoint_port=_free_port())
    try:
        if not (home / "dagster_home").is_dir():
            _run_demo(home, env)
        yield from _serve(home, env)
    finally:
        _stop_scoring_service(home)


def _serve(home: Path, env: dict[str, str]) -> Iterator[DagsterUI]:
    port = _free_port()
    ui = DagsterUI(base_url=f"http://127.0.0.1:{port}", home=home)
    log_path = ARTIFACTS / "dagster_dev.log"
    with log_path.open("w") as log:
        process = _start_dagster_dev(env, port, log)
        try:
            _wait_until_ready(ui, process, log_path)
            # The "join the community" dialog would cover the pages: mark it as seen.
            ui.graphql("mutation SetNuxSeen { setNuxSeen }")
            model = ui.graphql(MODEL_QUERY)["assetOrError"].get("assetMaterializations")
            if not model:
                pytest.fail(
                    f"the demo left no fraud_model materialization in {home} "
                    f"(--days {DEMO_DAYS}); {ARTIFACTS / 'demo.log'}:\n"
                    f"{_tail(ARTIFACTS / 'demo.log')}",
                    pytrace=False,
                )
            yield ui
        finally:
            _stop(process)


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    sync_api.expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest):
    """A fresh browser context per test; a failed test leaves a screenshot and a trace."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    # Belt and braces with setNuxSeen: the dialog also checks this local-storage key.
    context.add_init_script("window.localStorage.setItem('communityNux', '\"1\"')")
    context.tracing.start(screenshots=True, snapshots=True)
    new_page = context.new_page()
    new_page.set_default_timeout(UI_TIMEOUT_MS)
    new_page.set_default_navigation_timeout(UI_TIMEOUT_MS)
    errors: list[str] = []
    new_page.on("pageerror", lambda error: errors.append(str(error)))
    yield new_page
    name = request.node.name
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        with contextlib.suppress(Exception):
            new_page.screenshot(path=ARTIFACTS / f"FAILED-{name}.png")
        context.tracing.stop(path=ARTIFACTS / f"FAILED-{name}.trace.zip")
        if errors:
            (ARTIFACTS / f"FAILED-{name}.page-errors.txt").write_text("\n".join(errors))
    else:
        context.tracing.stop()
    context.close()
