"""``FRAUD_FEATURE_ENGINE=spark`` selects the Spark engine; DuckDB stays the default.

Constructing the resources starts no JVM: the session is made on the first build.
"""

from __future__ import annotations

import sys

import pytest

from fraud_orchestration.resources.environments import build_resources
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine
from fraud_orchestration.resources.spark_engine import SparkFeatureEngine
from fraud_orchestration.settings import load_settings

pytestmark = pytest.mark.spark


def _feature_engine(tmp_path, **environ: str):
    settings = load_settings({"FRAUD_HOME": str(tmp_path), **environ})
    try:
        return build_resources(settings)["feature_engine"]
    except NotImplementedError as error:
        pytest.skip(f"environments.py does not wire the Spark engine yet: {error}")


def test_duckdb_is_the_default(tmp_path) -> None:
    assert isinstance(
        build_resources(load_settings({"FRAUD_HOME": str(tmp_path)}))["feature_engine"],
        DuckDBFeatureEngine,
    )


def test_spark_is_selected_with_local_star_by_default(tmp_path) -> None:
    engine = _feature_engine(tmp_path, FRAUD_FEATURE_ENGINE="spark")
    assert isinstance(engine, SparkFeatureEngine)
    assert (engine.master, engine.connect_url) == ("local[*]", "")


def test_a_connect_url_or_master_comes_from_the_environment(tmp_path) -> None:
    settings = load_settings({"FRAUD_HOME": str(tmp_path)})
    if not hasattr(settings, "spark_connect_url"):
        pytest.skip("settings.py does not read FRAUD_SPARK_MASTER / FRAUD_SPARK_CONNECT_URL yet")
    engine = _feature_engine(
        tmp_path,
        FRAUD_FEATURE_ENGINE="spark",
        FRAUD_SPARK_MASTER="local[2]",
        FRAUD_SPARK_CONNECT_URL="sc://spark.example:15002",
    )
    assert (engine.master, engine.connect_url) == ("local[2]", "sc://spark.example:15002")


def test_importing_the_engine_does_not_import_pyspark() -> None:
    """The module loads without the `spark` extra; PySpark is imported on first use."""
    code = "import sys, fraud_orchestration.resources.spark_engine; print('pyspark' in sys.modules)"
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
