"""The scoring endpoint on SageMaker: real-time, serverless or multi-model.

Every deploy of a version creates the Model (named by version and artifact digest) and a
NEW EndpointConfig (named by version and time); configs are never deleted, so the one in
use -- and the ones a rollback may return to -- always exist. A new endpoint is created; an
existing one is updated with a blue/green ``DeploymentConfig`` (canary or linear traffic
shifting, auto-rollback on the CloudWatch alarms named in config). The deploy waits for
``InService`` with a timeout; an update that ends ``Failed``, or rolls back (the endpoint
back in service on the old config), raises :class:`DeploymentError` naming the config that
keeps serving. Deploying the version already served is a no-op.

Real-time variants register a target-tracking auto-scaling policy on
``SageMakerVariantInvocationsPerInstance`` (min/max instances in config). Serverless
variants take memory, max concurrency and optional provisioned concurrency; SageMaker
shifts serverless traffic all at once, so canary/linear apply to real-time only.

Multi-model mode: one endpoint whose container (``Mode: MultiModel``) loads any
``*.tar.gz`` under one S3 prefix on demand; a deploy uploads ``fraud-v<N>.tar.gz`` there
(no endpoint update), and callers pick a model per request with ``TargetModel`` -- e.g. one
model per segment or fraud type (:meth:`SageMakerEndpoint.add_model`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import Field

from fraud_orchestration.resources.aws.clients import aws_client, error_code
from fraud_orchestration.resources.aws.model_registry import model_tarball
from fraud_orchestration.resources.aws.s3_lake import S3Lake
from fraud_orchestration.resources.aws.trainer import xgboost_image_uri
from fraud_orchestration.resources.endpoint import (
    CANARY,
    Deployment,
    DeploymentError,
    Endpoint,
    Health,
)

BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "UpdateRollbackFailed")
VERSION_IN_NAME = re.compile(r"-v(\d+)-")


def deployment_config(
    shifting: str,
    canary_percent: int,
    linear_step_percent: int,
    wait_interval_seconds: int,
    termination_wait_seconds: int,
    max_execution_seconds: int,
    alarms: list[str],
) -> dict[str, Any]:
    """The ``DeploymentConfig`` of an ``UpdateEndpoint`` (blue/green)."""
    routing: dict[str, Any] = {
        "Type": shifting.upper(),
        "WaitIntervalInSeconds": wait_interval_seconds,
    }
    if shifting == "canary":
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": canary_percent}
    elif shifting == "linear":
        routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": linear_step_percent}
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": termination_wait_seconds,
            "MaximumExecutionTimeoutInSeconds": max_execution_seconds,
        }
    }
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return config


def wait_in_service(
    client: Any,
    name: str,
    wanted_config: str,
    previous_config: str | None,
    timeout_seconds: float,
    poll_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll until the endpoint serves ``wanted_config``; raise DeploymentError otherwise."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        described = client.describe_endpoint(EndpointName=name)
        status = described["EndpointStatus"]
        serving = described.get("EndpointConfigName")
        if status == "InService" and serving == wanted_config:
            return described
        keeps = (
            f"{serving or previous_config} keeps serving" if previous_config else "nothing serves"
        )
        if status == "Failed" or (status == "InService" and serving != wanted_config):
            reason = described.get("FailureReason", "rolled back")
            raise DeploymentError(
                f"{name}: {wanted_config} not deployed ({status}: {reason}); {keeps}"
            )
        if status == "RollingBack":
            raise DeploymentError(
                f"{name}: {wanted_config} is rolling back "
                f"({described.get('FailureReason', 'an auto-rollback alarm fired')}); {keeps}"
            )
        if time.monotonic() > deadline:
            raise DeploymentError(
                f"{name}: still {status} after {timeout_seconds} s waiting for {wanted_config}; "
                f"{keeps} (nothing was deleted)"
            )
        sleep(poll_seconds)


def roll_out(
    client: Any,
    name: str,
    config_name: str,
    previous_config: str | None,
    blue_green: dict[str, Any],
    timeout_seconds: float,
    poll_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """``UpdateEndpoint`` to ``config_name`` with the blue/green ``DeploymentConfig``, then
    wait. SageMaker keeps the old fleet serving until the new one passes (and rolls back to
    it when an alarm fires), so a failure here leaves ``previous_config`` serving."""
    client.update_endpoint(
        EndpointName=name,
        EndpointConfigName=config_name,
        RetainAllVariantProperties=False,
        DeploymentConfig=blue_green,
    )
    return wait_in_service(
        client, name, config_name, previous_config, timeout_seconds, poll_seconds, sleep
    )


class SageMakerEndpoint(Endpoint):
    lake: S3Lake
    endpoint_name: str = Field(default="fraud-endpoint", description="FRAUD_ENDPOINT_NAME")
    role_arn: str = Field(description="Execution role of the Model (FRAUD_SAGEMAKER_ROLE_ARN).")
    region_name: str = "us-east-1"
    endpoint_url: str = Field(default="", description="Only to point at moto/LocalStack.")
    image_uri: str = Field(
        default="",
        description="Serving image: the project's scoring container in ECR (the SageMaker "
        "container contract, fraud_orchestration.serving); empty: built-in XGBoost.",
    )
    mode: Literal["realtime", "serverless", "multimodel"] = "realtime"
    variant_name: str = "AllTraffic"
    instance_type: str = "ml.m5.large"
    initial_instance_count: int = 1
    min_instances: int = 1
    max_instances: int = 4
    target_invocations_per_instance: float = 1000.0
    scale_in_cooldown_seconds: int = 300
    scale_out_cooldown_seconds: int = 60
    serverless_memory_mb: int = 2048
    serverless_max_concurrency: int = 20
    serverless_provisioned_concurrency: int = Field(default=0, description="0: none.")
    traffic_shifting: Literal["canary", "linear", "all_at_once"] = "canary"
    canary_percent: int = 10
    linear_step_percent: int = 25
    wait_interval_seconds: int = 300
    termination_wait_seconds: int = 300
    rollback_alarms: list[str] = Field(default_factory=list, description="FRAUD_ROLLBACK_ALARMS")
    in_service_timeout_seconds: float = 3600.0
    poll_seconds: float = 20.0
    latency_budget_ms: float = 200.0

    @property
    def url(self) -> str:
        return (
            f"https://runtime.sagemaker.{self.region_name}.amazonaws.com/endpoints/"
            f"{self.endpoint_name}/invocations"
        )

    def client(self, service: str = "sagemaker") -> Any:
        return aws_client(service, self.region_name, self.endpoint_url)

    # -- what is deployed ------------------------------------------------------------------

    def describe(self) -> dict[str, Any] | None:
        try:
            return self.client().describe_endpoint(EndpointName=self.endpoint_name)
        except ClientError as error:
            if error_code(error) in ("ValidationException", "ResourceNotFound"):
                return None
            raise

    def deployed_version(self) -> int | None:
        if self.mode == "multimodel":
            state = self._state()
            return state.get("version") if state else None
        described = self.describe()
        if described is None or described["EndpointStatus"] != "InService":
            return None
        found = VERSION_IN_NAME.search(described["EndpointConfigName"] + "-")
        return int(found[1]) if found else None

    # -- deploy ----------------------------------------------------------------------------

    def deploy(self, version: int, model_dir: Path) -> Deployment:
        if self.deployed_version() == version:
            return Deployment(version, changed=False, detail={"reason": "already serving"})
        if self.mode == "multimodel":
            return self._deploy_multimodel(version, model_dir)
        current = self.describe()
        if current is not None and current["EndpointStatus"] in BUSY:
            raise DeploymentError(
                f"{self.endpoint_name} is {current['EndpointStatus']}; "
                f"{current.get('EndpointConfigName')} keeps serving -- try again when it settles"
            )
        model_name = self._create_model(version, model_dir)
        config_name = self._create_config(version, model_name)
        client = self.client()
        previous = current["EndpointConfigName"] if current else None
        if current is None:
            client.create_endpoint(EndpointName=self.endpoint_name, EndpointConfigName=config_name)
            wait_in_service(
                client,
                self.endpoint_name,
                config_name,
                None,
                self.in_service_timeout_seconds,
                self.poll_seconds,
            )
        else:
            roll_out(
                client,
                self.endpoint_name,
                config_name,
                previous,
                self.deployment_config(),
                self.in_service_timeout_seconds,
                self.poll_seconds,
            )
        scaling = self._register_autoscaling() if self.mode == "realtime" else {}
        return Deployment(
            version,
            changed=True,
            detail={
                "model": model_name,
                "endpoint_config": config_name,
                "previous_endpoint_config": previous or "",
                "mode": self.mode,
                "autoscaling": scaling,
            },
        )

    def deployment_config(self) -> dict[str, Any]:
        shifting = "all_at_once" if self.mode == "serverless" else self.traffic_shifting
        return deployment_config(
            shifting,
            self.canary_percent,
            self.linear_step_percent,
            self.wait_interval_seconds if shifting != "all_at_once" else 0,
            self.termination_wait_seconds,
            int(self.in_service_timeout_seconds),
            list(self.rollback_alarms),
        )

    def production_variant(self, model_name: str) -> dict[str, Any]:
        variant: dict[str, Any] = {"VariantName": self.variant_name, "ModelName": model_name}
        if self.mode == "serverless":
            serverless = {
                "MemorySizeInMB": self.serverless_memory_mb,
                "MaxConcurrency": self.serverless_max_concurrency,
            }
            if self.serverless_provisioned_concurrency:
                serverless["ProvisionedConcurrency"] = self.serverless_provisioned_concurrency
            variant["ServerlessConfig"] = serverless
        else:
            variant.update(
                InstanceType=self.instance_type,
                InitialInstanceCount=self.initial_instance_count,
                InitialVariantWeight=1.0,
            )
        return variant

    def _image(self) -> str:
        return self.image_uri or xgboost_image_uri(self.region_name)

    def _upload_model(self, key: str, model_dir: Path) -> tuple[str, str]:
        files = {p.name: p.read_bytes() for p in sorted(Path(model_dir).iterdir()) if p.is_file()}
        tarball = model_tarball(files)
        return self.lake.write_object(key, tarball), hashlib.sha256(tarball).hexdigest()[:8]

    def _create_model(self, version: int, model_dir: Path) -> str:
        uri, digest = self._upload_model(
            f"endpoint/{self.endpoint_name}/models/v{version}/model.tar.gz", model_dir
        )
        name = f"{self.endpoint_name}-v{version}-{digest}"
        client = self.client()
        try:
            client.describe_model(ModelName=name)
            return name
        except ClientError as error:
            if error_code(error) not in ("ValidationException", "ResourceNotFound"):
                raise
        client.create_model(
            ModelName=name,
            PrimaryContainer={"Image": self._image(), "ModelDataUrl": uri, "Mode": "SingleModel"},
            ExecutionRoleArn=self.role_arn,
        )
        return name

    def _create_config(self, version: int, model_name: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")[:-3]
        name = f"{self.endpoint_name}-v{version}-{stamp}"
        self.client().create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[self.production_variant(model_name)],
            Tags=[{"Key": "fraud:model-version", "Value": str(version)}],
        )
        return name

    def _register_autoscaling(self) -> dict[str, Any]:
        scaling = self.client("application-autoscaling")
        resource = f"endpoint/{self.endpoint_name}/variant/{self.variant_name}"
        dimension = "sagemaker:variant:DesiredInstanceCount"
        scaling.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension=dimension,
            MinCapacity=self.min_instances,
            MaxCapacity=self.max_instances,
        )
        scaling.put_scaling_policy(
            PolicyName=f"{self.endpoint_name}-invocations-per-instance",
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension=dimension,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": self.target_invocations_per_instance,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
                "ScaleInCooldown": self.scale_in_cooldown_seconds,
                "ScaleOutCooldown": self.scale_out_cooldown_seconds,
            },
        )
        return {"resource": resource, "min": self.min_instances, "max": self.max_instances}

    # -- multi-model -----------------------------------------------------------------------

    @property
    def _mme_prefix(self) -> str:
        return f"endpoint/{self.endpoint_name}/mme"

    def add_model(self, target_model: str, model_dir: Path) -> str:
        """Put a model behind the multi-model endpoint as ``target_model`` (``*.tar.gz``)."""
        if not target_model.endswith(".tar.gz"):
            raise ValueError("a multi-model target is a .tar.gz name under the model prefix")
        self._ensure_multimodel_endpoint()
        uri, _ = self._upload_model(f"{self._mme_prefix}/{target_model}", model_dir)
        return uri

    def _deploy_multimodel(self, version: int, model_dir: Path) -> Deployment:
        target = f"fraud-v{version}.tar.gz"
        uri = self.add_model(target, model_dir)
        self.lake.write_object(
            f"endpoint/{self.endpoint_name}/state.json",
            json.dumps({"version": version, "target_model": target}).encode(),
        )
        return Deployment(version, changed=True, detail={"target_model": target, "artifact": uri})

    def _ensure_multimodel_endpoint(self) -> None:
        current = self.describe()
        if current is not None and current["EndpointStatus"] not in ("Failed",):
            return
        name = f"{self.endpoint_name}-mme"
        client = self.client()
        try:
            client.describe_model(ModelName=name)
        except ClientError:
            client.create_model(
                ModelName=name,
                PrimaryContainer={
                    "Image": self._image(),
                    "Mode": "MultiModel",
                    "ModelDataUrl": self.lake.uri(self._mme_prefix) + "/",
                },
                ExecutionRoleArn=self.role_arn,
            )
        config = self._create_config(0, name)
        client.create_endpoint(EndpointName=self.endpoint_name, EndpointConfigName=config)
        wait_in_service(
            client,
            self.endpoint_name,
            config,
            None,
            self.in_service_timeout_seconds,
            self.poll_seconds,
        )

    def _state(self) -> dict[str, Any] | None:
        key = f"endpoint/{self.endpoint_name}/state.json"
        if not self.lake.object_exists(key):
            return None
        return json.loads(self.lake.read_object(key))

    # -- calls -----------------------------------------------------------------------------

    def invoke(self, payload: dict[str, Any], target_model: str | None = None) -> dict[str, Any]:
        """One JSON request; in multi-model mode to ``target_model`` (default: the deployed)."""
        request: dict[str, Any] = {
            "EndpointName": self.endpoint_name,
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": json.dumps(payload).encode(),
        }
        if self.mode == "multimodel":
            state = self._state() or {}
            request["TargetModel"] = target_model or state.get("target_model", "")
        answer = self.client("sagemaker-runtime").invoke_endpoint(**request)
        return json.loads(answer["Body"].read())

    def probe(self, requests: int = 50) -> Health:
        """Canary requests through ``InvokeEndpoint`` (the scoring container's JSON contract)."""
        version = self.deployed_version()
        if version is None:
            return Health(
                False, None, 0.0, 0.0, requests, 0, f"{self.endpoint_name} not in service"
            )
        latencies, failures, fallbacks = [], 0, 0
        for number in range(requests):
            started = time.perf_counter()
            try:
                answer = self.invoke({**CANARY, "transaction_id": number})
            except (ClientError, ValueError):
                failures += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            fallbacks += bool(answer.get("fallback")) if isinstance(answer, dict) else 0
        latencies.sort()
        p50 = latencies[len(latencies) // 2] if latencies else 0.0
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
        healthy = failures == 0 and fallbacks == 0 and p99 <= self.latency_budget_ms
        message = (
            f"{requests} canary requests to {self.endpoint_name}: {failures} failed, "
            f"{fallbacks} fallback answers, p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        return Health(healthy, version, round(p50, 2), round(p99, 2), failures, fallbacks, message)
