"""The trainer: where a challenger is fitted. In process (local) or a SageMaker training job.

Both follow :func:`fraud_orchestration.modeling.lifecycle.fit`'s protocol -- early-stop on
the validation days, refit on the whole train window with the rounds early stopping chose,
keep the threshold picked on the held-out days -- so the environment changes where the
trees are grown, not which trees.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from dagster import ConfigurableResource

from fraud_orchestration.modeling.lifecycle import fit
from fraud_orchestration.modeling.trainer import TrainedModel, TrainingParams
from fraud_orchestration.training.dataset import TrainingSet


class Trainer(ConfigurableResource, ABC):
    @abstractmethod
    def fit(
        self, training_set: TrainingSet, features: list[str], params: TrainingParams
    ) -> TrainedModel:
        """A model fitted on ``training_set``'s train window (validation days held out)."""


class LocalTrainer(Trainer):
    """XGBoost in this process (the embedded default)."""

    def fit(
        self, training_set: TrainingSet, features: list[str], params: TrainingParams
    ) -> TrainedModel:
        return fit(training_set, features, params)
