"""Resource sets per environment: the one place that maps ``Settings`` to resource classes."""

from __future__ import annotations

from typing import Any

from fraud_orchestration.resources.endpoint import LocalEndpoint
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine
from fraud_orchestration.resources.feature_store import LocalFeatureStore
from fraud_orchestration.resources.lake import LocalLake
from fraud_orchestration.resources.model_registry import LocalModelRegistry
from fraud_orchestration.settings import Settings


def build_resources(settings: Settings) -> dict[str, Any]:
    if settings.env != "local":
        raise NotImplementedError("FRAUD_ENV=aws is not built yet (issue 7); use FRAUD_ENV=local.")
    if settings.feature_engine != "duckdb":
        raise NotImplementedError(
            "FRAUD_FEATURE_ENGINE=spark is not built yet (issue 6); use duckdb."
        )
    home = settings.home
    return {
        "lake": LocalLake(root=str(home)),
        "feature_engine": DuckDBFeatureEngine(),
        "feature_store": LocalFeatureStore(root=str(home / "feature_store")),
        "model_registry": LocalModelRegistry(root=str(home / "registry")),
        "endpoint": LocalEndpoint(home=str(home), port=settings.endpoint_port),
    }
