"""Great Expectations 1.x suites, stored as JSON in ``expectations/``, run on pandas frames.

``dagster-ge`` supports only GX < 1, so the suites run directly through an ephemeral GX
context. Row-level results (``unexpected_index_list`` keyed on a private row number) tell
which rows failed which expectation, so failing rows can be quarantined with a reason.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"
ROW = "_row"


@dataclass(frozen=True)
class SuiteOutcome:
    """Which rows failed which expectation, and a per-expectation summary."""

    failed_rows: dict[int, list[str]]
    summary: list[dict]

    @property
    def success(self) -> bool:
        return all(item["success"] for item in self.summary)


def load_suite_json(name: str) -> dict:
    return json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text())


@functools.cache
def _batch_definition():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("fraud_orchestration")
    return source.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("whole")


@functools.cache
def _suite(name: str):
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    spec = load_suite_json(name)
    expectations = [
        ExpectationConfiguration(type=item["type"], kwargs=item["kwargs"]).to_domain_obj()
        for item in spec["expectations"]
    ]
    return gx.ExpectationSuite(name=spec["name"], expectations=expectations)


def run_suite(
    name: str, frame: pd.DataFrame, parameters: dict[str, float] | None = None
) -> SuiteOutcome:
    """Validate ``frame`` against the suite ``expectations/<name>.json``."""
    frame = frame.reset_index(drop=True)
    frame[ROW] = range(len(frame))
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(
        _suite(name),
        expectation_parameters=parameters or {},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]},
    )
    failed: dict[int, list[str]] = {}
    summary = []
    for item in result.results:
        config = item.expectation_config
        label = f"{config.type}({config.kwargs.get('column', '')})"
        details = item.result or {}
        for hit in details.get("unexpected_index_list") or []:
            failed.setdefault(int(hit[ROW]), []).append(label)
        summary.append(
            {
                "expectation": label,
                "success": bool(item.success),
                "unexpected_count": int(details.get("unexpected_count") or 0),
                "unexpected_percent": float(details.get("unexpected_percent") or 0.0),
            }
        )
    return SuiteOutcome(failed_rows=failed, summary=summary)
