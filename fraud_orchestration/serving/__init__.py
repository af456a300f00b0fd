"""The scoring service (SageMaker inference contract): see ``serving.app``."""

from fraud_orchestration.serving.app import ScoringService, ServingConfig, create_app
from fraud_orchestration.serving.rules import RuleSet
from fraud_orchestration.serving.server import admin_load, admin_status, score_one, serve

__all__ = [
    "RuleSet",
    "ScoringService",
    "ServingConfig",
    "admin_load",
    "admin_status",
    "create_app",
    "score_one",
    "serve",
]
