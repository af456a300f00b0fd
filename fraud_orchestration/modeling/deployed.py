"""The model the batch side scores with: the registry's champion (the newest Approved)."""

from __future__ import annotations

from dataclasses import dataclass

from fraud_orchestration.modeling.trainer import TrainedModel
from fraud_orchestration.resources.model_registry import ModelRegistry


@dataclass(frozen=True)
class DeployedModel:
    model: TrainedModel
    version: int
    training_set: str
    """Content hash of the training set the model learnt from: the drift reference."""


def champion_model(registry: ModelRegistry) -> DeployedModel:
    champion = registry.champion()
    if champion is None:
        raise ValueError("No approved model in the registry yet: run the retraining job first.")
    model = TrainedModel.load(registry.load_model_dir(champion.version))
    return DeployedModel(model, champion.version, champion.card["training_set"])
