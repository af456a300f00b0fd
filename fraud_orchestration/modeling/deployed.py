"""The model the batch side scores with: the version ``fraud_endpoint`` last deployed."""

from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetKey, DagsterInstance, Failure

from fraud_orchestration.modeling.trainer import TrainedModel
from fraud_orchestration.resources.model_registry import ModelRegistry


@dataclass(frozen=True)
class DeployedModel:
    model: TrainedModel
    version: int
    training_set: str
    """Content hash of the training set the model learnt from: the drift reference."""


def deployed_model(instance: DagsterInstance, registry: ModelRegistry) -> DeployedModel:
    """Read from ``fraud_endpoint``'s newest materialization, so batch scores and drift use
    exactly the version the endpoint serves (hybrid scoring stays consistent)."""
    event = instance.get_latest_materialization_event(AssetKey("fraud_endpoint"))
    if event is None or event.asset_materialization is None:
        raise Failure(
            "No model deployed yet: run the retraining (or deployment) job first.",
            allow_retries=False,
        )
    version = event.asset_materialization.metadata["model_version"].value
    if not isinstance(version, int):
        raise Failure(
            f"fraud_endpoint's model_version is not a version number: {version!r}",
            allow_retries=False,
        )
    model = TrainedModel.load(registry.load_model_dir(version))
    return DeployedModel(model, version, registry.get(version).card["training_set"])
