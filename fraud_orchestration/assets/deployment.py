"""``fraud_endpoint`` (blue/green deployment of the champion) and ``serving_cost_estimate``."""

from datetime import date
from typing import Literal

import pyarrow.parquet as pq
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from fraud_orchestration.monitoring.costs import Load, PriceTable, as_markdown, estimate
from fraud_orchestration.resources.endpoint import DeploymentError, Endpoint, Health
from fraud_orchestration.resources.lake import Lake
from fraud_orchestration.resources.model_registry import ModelRegistry, RegistryError
from fraud_orchestration.retries import EXTERNAL_IO

HEALTH_CHECK = "endpoint_health"


class EndpointConfig(Config):
    target: Literal["champion", "previous_champion"] = Field(
        default="champion",
        description="What to serve: the newest Approved version, or the one before it "
        "(the deployment sensor asks for that when the endpoint's health check fails).",
    )


@asset(
    deps=["fraud_model"],
    group_name="serving",
    kinds={"xgboost", "uvicorn"},
    owners=["team:fraud-ml"],
    retry_policy=EXTERNAL_IO,
)
def fraud_endpoint(
    context: AssetExecutionContext,
    config: EndpointConfig,
    model_registry: ModelRegistry,
    endpoint: Endpoint,
) -> MaterializeResult:
    """The approved model serving behind the endpoint. Blue/green: the model is loaded into
    a standby slot, smoke-tested with canary requests and a latency check, then switched in;
    on failure the previous model keeps serving and the reason is recorded. Deploying the
    version already served is a no-op. Rejected models are never deployed."""
    if config.target == "champion":
        target = model_registry.champion()
    else:
        target = model_registry.previous_champion()
    if target is None:
        raise Failure(
            f"No {config.target.replace('_', ' ')} in the registry to deploy.", allow_retries=False
        )
    try:
        deployment = endpoint.deploy(target.version, model_registry.load_model_dir(target.version))
    except (DeploymentError, RegistryError) as error:  # refused, or its checksums do not match
        raise Failure(
            str(error), metadata={"refused_version": target.version}, allow_retries=False
        ) from error
    context.log.info(
        f"v{target.version} {'now serving' if deployment.changed else 'already serving'} "
        f"at {endpoint.url}"
    )
    return MaterializeResult(
        metadata={
            "model_version": target.version,
            "target": config.target,
            "changed": deployment.changed,
            "endpoint_url": MetadataValue.url(endpoint.url),
            "smoke_test": MetadataValue.json(deployment.detail),
        }
    )


@asset_check(
    asset=fraud_endpoint,
    name=HEALTH_CHECK,
    description="50 canary requests: every one answered by the model (not the fallback) "
    "and p99 latency within the budget.",
)
def endpoint_health(context: AssetCheckExecutionContext, endpoint: Endpoint) -> AssetCheckResult:
    return health_result(endpoint.probe())


def health_result(health: Health) -> AssetCheckResult:
    return AssetCheckResult(
        passed=health.healthy,
        description=health.message,
        metadata={
            "model_version": health.version or 0,
            "p50_ms": health.p50_ms,
            "p99_ms": health.p99_ms,
            "failed_requests": health.failures,
            "fallback_answers": health.fallback_answers,
        },
    )


class CostConfig(Config):
    price_as_of: str = PriceTable.as_of
    price_source: str = PriceTable.source
    instance_type: str = PriceTable.instance_type
    instance_per_hour: float = PriceTable.instance_per_hour
    serverless_per_gb_second: float = PriceTable.serverless_per_gb_second
    serverless_per_gb_processed: float = PriceTable.serverless_per_gb_processed
    batch_instance_per_hour: float = PriceTable.batch_instance_per_hour
    models: int = Field(default=1, description="Models a multi-model endpoint would host.")
    days: int = Field(default=7, description="Scored days the request volume is averaged over.")

    def prices(self) -> PriceTable:
        return PriceTable(
            as_of=self.price_as_of,
            source=self.price_source,
            instance_type=self.instance_type,
            instance_per_hour=self.instance_per_hour,
            serverless_per_gb_second=self.serverless_per_gb_second,
            serverless_per_gb_processed=self.serverless_per_gb_processed,
            batch_instance_per_hour=self.batch_instance_per_hour,
        )


@asset(
    deps=["transaction_scores", fraud_endpoint],
    group_name="serving",
    kinds={"sagemaker"},
    owners=["team:fraud-ml"],
    retry_policy=EXTERNAL_IO,
)
def serving_cost_estimate(
    context: AssetExecutionContext, config: CostConfig, lake: Lake, endpoint: Endpoint
) -> MaterializeResult:
    """Monthly cost of real-time instances, serverless, a multi-model endpoint and batch
    transform, for the measured daily volume (scored transactions) and the endpoint's
    measured p99 latency, from a dated price table in config."""
    scored = sorted(context.instance.get_materialized_partitions(AssetKey("transaction_scores")))
    recent = [date.fromisoformat(key) for key in scored[-config.days :]]
    if not recent:
        raise Failure(
            "No scored days yet: materialize transaction_scores first.", allow_retries=False
        )
    rows = sum(
        pq.ParquetFile(lake.table_uri("transaction_scores", day)).metadata.num_rows
        for day in recent
    )
    health = endpoint.probe()
    load = Load(
        requests_per_day=rows / len(recent), p99_latency_ms=health.p99_ms, models=config.models
    )
    options = estimate(load, config.prices())
    return MaterializeResult(
        metadata={
            "requests_per_day": round(load.requests_per_day, 1),
            "p99_latency_ms": health.p99_ms,
            "price_table_as_of": config.price_as_of,
            "price_source": config.price_source,
            **{f"usd_per_month/{o.name}": o.monthly_usd for o in options},
            "estimate": MetadataValue.md(as_markdown(options, load, config.prices())),
        }
    )
