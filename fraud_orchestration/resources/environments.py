"""Resource sets per environment: the one place that maps ``Settings`` to resource classes."""

from __future__ import annotations

from typing import Any

from fraud_orchestration.resources.endpoint import LocalEndpoint
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine, FeatureEngine
from fraud_orchestration.resources.feature_store import LocalFeatureStore
from fraud_orchestration.resources.lake import LocalLake
from fraud_orchestration.resources.model_registry import LocalModelRegistry
from fraud_orchestration.resources.spark_engine import SparkFeatureEngine
from fraud_orchestration.settings import Settings


def build_resources(settings: Settings) -> dict[str, Any]:
    if settings.env != "local":
        raise NotImplementedError("FRAUD_ENV=aws is not built yet (issue 7); use FRAUD_ENV=local.")
    home = settings.home
    return {
        "lake": LocalLake(root=str(home)),
        "feature_engine": _feature_engine(settings),
        "feature_store": LocalFeatureStore(root=str(home / "feature_store")),
        "model_registry": LocalModelRegistry(root=str(home / "registry")),
        "endpoint": LocalEndpoint(home=str(home), port=settings.endpoint_port),
    }


def _feature_engine(settings: Settings) -> FeatureEngine:
    if settings.feature_engine == "spark":
        return SparkFeatureEngine(
            master=settings.spark_master, connect_url=settings.spark_connect_url
        )
    return DuckDBFeatureEngine()
