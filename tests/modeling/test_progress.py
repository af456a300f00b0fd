"""Long work logs how far it is: training rounds and DuckDB feature builds."""

from __future__ import annotations

import logging
import re

import duckdb

from fraud_orchestration.modeling.trainer import TrainingParams, train_model
from fraud_orchestration.progress import PercentLog, duckdb_query_progress

from .conftest import FEATURES


def test_percent_log_reports_each_step_once() -> None:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    log = logging.getLogger("test-percent-log")
    log.addHandler(Collect())
    log.setLevel(logging.INFO)
    percent_log = PercentLog("work", step=25, log=log)
    for percent in (1, 24, 25, 26, 60, 99, 100, 100):
        percent_log.update(percent)
    assert lines == ["work: 25%", "work: 50%", "work: 75%", "work: 100%"]


def test_training_logs_rounds_and_where_it_stopped(splits, caplog) -> None:
    train, valid, _ = splits
    caplog.set_level(logging.INFO)
    params = TrainingParams(n_estimators=20, early_stopping_rounds=None)
    train_model(train, valid, FEATURES, params)
    marks = [int(m) for m in re.findall(r"training rounds: (\d+)% \(round", caplog.text)]
    assert marks == list(range(10, 101, 10))
    assert "training rounds: stopped after 20 of 20" in caplog.text


def test_a_duckdb_query_reports_progress(caplog) -> None:
    caplog.set_level(logging.INFO)
    with (
        duckdb.connect() as connection,
        duckdb_query_progress(connection, "feature build", poll_seconds=0.01),
    ):
        connection.execute(
            "SELECT sum(c) FROM (SELECT count(*) OVER (PARTITION BY range % 1000 "
            "ORDER BY range ROWS 50 PRECEDING) AS c FROM range(3000000))"
        ).fetchall()
    assert "feature build: 100%" in caplog.text
