"""Resource sets per environment: the one place that maps ``Settings`` to resource classes."""

from __future__ import annotations

from typing import Any

from fraud_orchestration.resources.endpoint import LocalEndpoint
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine, FeatureEngine
from fraud_orchestration.resources.feature_store import LocalFeatureStore
from fraud_orchestration.resources.lake import LocalLake
from fraud_orchestration.resources.model_registry import LocalModelRegistry
from fraud_orchestration.resources.spark_engine import SparkFeatureEngine
from fraud_orchestration.resources.trainer import LocalTrainer
from fraud_orchestration.settings import Settings


def build_resources(settings: Settings) -> dict[str, Any]:
    if settings.env == "aws":
        return _aws_resources(settings)
    home = settings.home
    return {
        "lake": LocalLake(root=str(home)),
        "feature_engine": _feature_engine(settings),
        "feature_store": LocalFeatureStore(root=str(home / "feature_store")),
        "trainer": LocalTrainer(),
        "model_registry": LocalModelRegistry(root=str(home / "registry")),
        "endpoint": LocalEndpoint(home=str(home), port=settings.endpoint_port),
    }


def _feature_engine(settings: Settings) -> FeatureEngine:
    if settings.feature_engine == "spark":
        return SparkFeatureEngine(
            master=settings.spark_master, connect_url=settings.spark_connect_url
        )
    return DuckDBFeatureEngine()


def _aws_resources(settings: Settings) -> dict[str, Any]:
    """S3, SageMaker Feature Store, training jobs, Model Registry and endpoints.

    Imported here so that the local mode never needs boto3 or dagster-aws installed.
    """
    from dagster_aws.s3 import S3Resource

    from fraud_orchestration.resources.aws.endpoint import SageMakerEndpoint
    from fraud_orchestration.resources.aws.feature_store import SageMakerFeatureStore
    from fraud_orchestration.resources.aws.model_registry import SageMakerModelRegistry
    from fraud_orchestration.resources.aws.s3_lake import S3Lake
    from fraud_orchestration.resources.aws.staged_engine import S3StagedDuckDBEngine
    from fraud_orchestration.resources.aws.trainer import SageMakerTrainer

    aws = settings.aws
    where: dict[str, Any] = {"region_name": aws.region, "endpoint_url": aws.endpoint_url}
    s3 = S3Resource(region_name=aws.region, endpoint_url=aws.endpoint_url or None)
    lake = S3Lake(s3=s3, bucket=aws.bucket, prefix=aws.prefix)
    engine: FeatureEngine
    if settings.feature_engine == "spark":
        engine = _feature_engine(settings)  # reads s3a:// URIs itself (see docs/aws.md)
    else:
        engine = S3StagedDuckDBEngine(lake=lake)
    return {
        "lake": lake,
        "feature_engine": engine,
        "feature_store": SageMakerFeatureStore(
            lake=lake, feature_group=aws.feature_group, role_arn=aws.sagemaker_role_arn, **where
        ),
        "trainer": SageMakerTrainer(lake=lake, role_arn=aws.sagemaker_role_arn, **where),
        "model_registry": SageMakerModelRegistry(lake=lake, group=aws.model_package_group, **where),
        "endpoint": SageMakerEndpoint(
            lake=lake,
            endpoint_name=aws.endpoint_name,
            role_arn=aws.sagemaker_role_arn,
            mode=aws.endpoint_mode,  # type: ignore[arg-type]  # validated by the resource
            rollback_alarms=list(aws.rollback_alarms),
            **where,
        ),
    }
