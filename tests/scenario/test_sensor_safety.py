"""Sensor safety: a replayed tick, or an evaluation interrupted between launching runs and
storing the cursor, never gives two runs for one trigger and never loses one.

The sensors run under Dagster's real sensor daemon, one iteration at a time
(``execute_sensor_iteration``, with the project's definitions loaded as an in-process code
location). There is no public API for this in Dagster 1.13: the daemon function, its
``debug_crash_flags`` (which raise at named points of a tick, the way Dagster's own
failure-recovery tests interrupt it) and ``MockedRunLauncher`` (which records launched runs
instead of executing them) are internal, so these tests pin the daemon behaviour the
sensors rely on and will tell when an upgrade changes it:

* run requests are reserved, with the new cursor, on the tick before any run is created;
  an interrupted tick is resumed on the next iteration instead of being re-evaluated;
* a request whose ``run_key`` this sensor has already launched is skipped.

Check evaluations are reported straight to the instance (a runless ``AssetCheckEvaluation``
is stored like a run's), so no job runs. Time is frozen and moved by hand past the sensors'
60-second minimum interval: nothing sleeps.
"""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    DagsterInstance,
    instance_for_test,
)
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.remote_representation.external import RemoteSensor
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.storage.tags import RUN_KEY_TAG
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.sensor import execute_sensor_iteration

from fraud_orchestration.automation.check_history import DRIFT_CHECK, HEALTH_CHECK
from fraud_orchestration.resources.model_registry import LocalRegistryStore

RETRAINING = "retraining_sensor"
DEPLOYMENT = "deployment_sensor"
CRASH_POINTS = ["RUN_IDS_RESERVED", "RUN_CREATED", "RUN_LAUNCHED"]
"""Where the daemon can be interrupted after the sensor was evaluated: requests and cursor
reserved on the tick, the run created, the run launched (the cursor is stored after all)."""

LOCATION = """
from dagster import Definitions

from fraud_orchestration.definitions import build_definitions
from fraud_orchestration.sensors import build_retraining_sensor, deployment_sensor
from fraud_orchestration.settings import load_settings

base = build_definitions(load_settings({{"FRAUD_HOME": {home!r}}}))
defs = Definitions(
    assets=base.assets,
    asset_checks=base.asset_checks,
    jobs=base.jobs,
    sensors=[build_retraining_sensor(cooldown_seconds={cooldown}), deployment_sensor],
    resources=base.resources,
)
"""


class Interrupted(Exception):
    """Raised by the daemon at a crash point, standing in for a killed process."""


@dataclass
class Daemon:
    """The sensor daemon over one instance and the project's code location."""

    instance: DagsterInstance
    context: WorkspaceProcessContext
    now: datetime

    def sensor(self, name: str) -> RemoteSensor:
        location = self.context.create_request_context().get_code_location("fraud")
        (repository,) = location.get_repositories().values()
        return repository.get_sensor(name)

    def tick(self, crash: dict[str, str] | None = None) -> None:
        """One daemon iteration, two minutes after the previous one; ``crash`` maps a sensor
        name to the point at which its tick is interrupted."""
        self.now += timedelta(minutes=2)
        flags = {name: {point: Interrupted(point)} for name, point in (crash or {}).items()}
        with freeze_time(self.now):
            list(
                execute_sensor_iteration(
                    self.context,
                    logging.getLogger("sensor-safety"),
                    threadpool_executor=None,
                    submit_threadpool_executor=None,
                    debug_crash_flags=flags or None,
                )
            )

    def last_tick(self, name: str):
        sensor = self.sensor(name)
        return self.instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id, limit=1)[
            0
        ]

    def stored_cursor(self, name: str) -> str | None:
        sensor = self.sensor(name)
        state = self.instance.get_instigator_state(
            sensor.get_remote_origin_id(), sensor.selector_id
        )
        return state.instigator_data.cursor

    def restore_cursor(self, name: str, cursor: str | None) -> None:
        """Put an older cursor back: the next evaluation replays the tick that read it."""
        sensor = self.sensor(name)
        state = self.instance.get_instigator_state(
            sensor.get_remote_origin_id(), sensor.selector_id
        )
        self.instance.update_instigator_state(
            state.with_data(state.instigator_data._replace(cursor=cursor))
        )

    def run_keys(self) -> list[str]:
        return sorted(run.tags[RUN_KEY_TAG] for run in self.instance.get_runs())

    def runs(self):
        return self.instance.get_runs()


@contextmanager
def running_daemon(tmp_path: Path, cooldown_seconds: float = 0) -> Iterator[Daemon]:
    home = tmp_path / "fraud_home"
    location = tmp_path / "sensor_location.py"
    location.write_text(textwrap.dedent(LOCATION).format(home=str(home), cooldown=cooldown_seconds))
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            python_file=str(location), attribute="defs", working_directory=str(tmp_path)
        ),
        location_name="fraud",
    )
    launcher = {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"}
    with (
        instance_for_test(overrides={"run_launcher": launcher}) as instance,
        create_test_daemon_workspace_context(
            InProcessWorkspaceLoadTarget(origin), instance
        ) as context,
    ):
        daemon = Daemon(instance, context, datetime(2030, 1, 1, tzinfo=UTC))
        for name in (RETRAINING, DEPLOYMENT):
            instance.start_sensor(daemon.sensor(name))
        yield daemon


def fail_check(instance: DagsterInstance, key, partition: str | None = None) -> None:
    instance.report_runless_asset_event(
        AssetCheckEvaluation(
            asset_key=key.asset_key,
            check_name=key.name,
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            partition=partition,
        )
    )


def approve_version(home: Path, tag: str) -> int:
    """Register and approve a stand-in model (the registry never parses the model)."""
    folder = home / "models" / tag
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps({"learner": tag}))
    (folder / "model_card.json").write_text(json.dumps({"features": ["f0"], "tag": tag}))
    registry = LocalRegistryStore(home / "registry")
    version = registry.register(folder, metrics={}).version
    registry.approve(version, "sensor safety test")
    return version


def partitions_answered(daemon: Daemon) -> list[str]:
    """Every trigger partition named by a retraining run, once per run naming it."""
    return sorted(
        partition
        for run in daemon.runs()
        if run.job_name == "nightly_retraining"
        for partition in run.tags["fraud/partitions"].split(",")
    )


@pytest.mark.scenario
@pytest.mark.parametrize("crash_point", CRASH_POINTS)
def test_an_interrupted_retraining_tick_launches_exactly_one_run(tmp_path, crash_point):
    with running_daemon(tmp_path) as daemon:
        daemon.tick()
        fail_check(daemon.instance, DRIFT_CHECK, "2018-05-10")
        daemon.tick(crash={RETRAINING: crash_point})
        assert daemon.last_tick(RETRAINING).status == TickStatus.FAILURE
        assert "2018-05-10" not in (daemon.stored_cursor(RETRAINING) or "")

        # a second trigger arrives before the daemon comes back
        fail_check(daemon.instance, DRIFT_CHECK, "2018-05-11")
        daemon.tick()  # resumes the interrupted tick: its run, not a merged one
        daemon.tick()  # evaluates the new trigger
        daemon.tick()
        daemon.tick()

        assert partitions_answered(daemon) == ["2018-05-10", "2018-05-11"]
        assert len(daemon.run_keys()) == len(set(daemon.run_keys())) == 2
        assert all(run.tags["fraud/trigger"] == "drift" for run in daemon.runs())


@pytest.mark.scenario
def test_a_replayed_retraining_tick_is_skipped_by_its_run_key(tmp_path):
    with running_daemon(tmp_path) as daemon:
        daemon.tick()
        before = daemon.stored_cursor(RETRAINING)
        fail_check(daemon.instance, DRIFT_CHECK, "2018-05-10")
        daemon.tick()
        (launched,) = daemon.run_keys()

        daemon.restore_cursor(RETRAINING, before)
        daemon.tick()
        replay = daemon.last_tick(RETRAINING)
        assert replay.status == TickStatus.SKIPPED, replay.status
        assert daemon.run_keys() == [launched], "the replay asked again and was skipped"
        assert daemon.stored_cursor(RETRAINING) != before, "the replay stored the cursor"
        daemon.tick()
        assert daemon.run_keys() == [launched]


@pytest.mark.scenario
def test_a_replay_that_sees_a_newer_trigger_does_not_answer_the_old_one_twice(tmp_path):
    with running_daemon(tmp_path) as daemon:
        daemon.tick()
        before = daemon.stored_cursor(RETRAINING)
        fail_check(daemon.instance, DRIFT_CHECK, "2018-05-10")
        daemon.tick()
        fail_check(daemon.instance, DRIFT_CHECK, "2018-05-11")
        daemon.restore_cursor(RETRAINING, before)
        daemon.tick()
        daemon.tick()
        assert partitions_answered(daemon) == ["2018-05-10", "2018-05-11"]


@pytest.mark.scenario
def test_a_trigger_in_the_cool_down_stays_pending_across_an_interruption(tmp_path):
    with running_daemon(tmp_path, cooldown_seconds=6 * 3600) as daemon:
        daemon.tick()
        fail_check(daemon.instance, DRIFT_CHECK, "2018-05-10")
        daemon.tick(crash={RETRAINING: "RUN_LAUNCHED"})
        fail_check(daemon.instance, DRIFT_CHECK, "2018-05-11")
        daemon.tick()
        daemon.tick()
        assert partitions_answered(daemon) == ["2018-05-10"]
        pending = json.loads(daemon.stored_cursor(RETRAINING))["pending"]
        assert [trigger["partition"] for trigger in pending] == ["2018-05-11"], "not lost"


@pytest.mark.scenario
@pytest.mark.parametrize("crash_point", CRASH_POINTS)
def test_an_interrupted_deployment_tick_deploys_and_rolls_back_once(tmp_path, crash_point):
    with running_daemon(tmp_path) as daemon:
        home = tmp_path / "fraud_home"
        daemon.tick()
        assert daemon.run_keys() == []
        approve_version(home, "a")
        fail_check(daemon.instance, HEALTH_CHECK)
        daemon.tick(crash={DEPLOYMENT: crash_point})
        approve_version(home, "b")
        for _ in range(4):
            daemon.tick()
        keys = daemon.run_keys()
        rollback = [key for key in keys if key.startswith("rollback-")]
        assert sorted(set(keys) - set(rollback)) == ["deploy-v1", "deploy-v2"]
        assert len(rollback) == 1 and len(keys) == 3
        (rollback_run,) = [r for r in daemon.runs() if r.tags[RUN_KEY_TAG] in rollback]
        assert rollback_run.tags["fraud/trigger"] == "endpoint_health_failed"


@pytest.mark.scenario
def test_a_replayed_deployment_tick_is_skipped_by_its_run_key(tmp_path):
    with running_daemon(tmp_path) as daemon:
        daemon.tick()
        before = daemon.stored_cursor(DEPLOYMENT)
        approve_version(tmp_path / "fraud_home", "a")
        fail_check(daemon.instance, HEALTH_CHECK)
        daemon.tick()
        launched = daemon.run_keys()
        assert len(launched) == 2
        for _ in range(2):
            daemon.restore_cursor(DEPLOYMENT, before)
            daemon.tick()
        assert daemon.run_keys() == launched
