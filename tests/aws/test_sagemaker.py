"""SageMaker resources: create-if-absent, no-op redeploy (moto), and the calls moto lacks
(Feature Store runtime, UpdateEndpoint) pinned with botocore's Stubber."""

from __future__ import annotations

import io
import json

import boto3
import pandas as pd
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from fraud_orchestration.features import FEATURES
from fraud_orchestration.resources.aws.clients import AwsCallError, aws_client
from fraud_orchestration.resources.aws.endpoint import deployment_config, roll_out
from fraud_orchestration.resources.aws.feature_store import (
    feature_definitions,
    get_history,
    history_records,
    put_records,
)
from fraud_orchestration.resources.endpoint import DeploymentError
from tests.aws.conftest import REGION, client

NOWHERE = "http://127.0.0.1:9"  # a Stubber answers before any request would leave


def _stubbed(service: str):
    made = boto3.client(service, region_name=REGION, endpoint_url=NOWHERE)
    return made, Stubber(made)


def test_feature_group_is_created_once_from_the_feature_definitions(aws_resources, moto_url, names):
    store = aws_resources["feature_store"]
    assert store.ensure_offline_group() == {names["feature_group"]: True}
    described = client("sagemaker", moto_url).describe_feature_group(
        FeatureGroupName=names["feature_group"]
    )
    types = {d["FeatureName"]: d["FeatureType"] for d in described["FeatureDefinitions"]}
    assert types["transaction_id"] == "Integral" and types["event_time"] == "String"
    assert all(f.name in types for f in FEATURES)
    assert described["FeatureDefinitions"] == feature_definitions()


def test_registry_group_is_created_if_absent(aws_resources):
    registry = aws_resources["model_registry"]
    assert registry.ensure_group() is True
    assert registry.ensure_group() is False
    assert registry.list_versions() == [] and registry.champion() is None


def test_online_records_are_put_with_retries_and_read_back():
    runtime, stub = _stubbed("sagemaker-featurestore-runtime")
    cards = pd.DataFrame(
        {
            "transaction_id": [1, 2],
            "tx_time_seconds": [10, 20],
            "customer_id": [7, 7],
            "terminal_id": [3, 4],
            "tx_amount": [5.0, 6.5],
        }
    )
    (record,) = history_records(cards, "customer_id", "2018-04-02T00:00:00Z")
    expected = {"FeatureGroupName": "g-cards", "Record": record, "TargetStores": ["OnlineStore"]}
    stub.add_client_error("put_record", "ThrottlingException", expected_params=expected)
    stub.add_response("put_record", {}, expected)
    stub.add_response(
        "get_record",
        {"Record": [record[2]]},
        {
            "FeatureGroupName": "g-cards",
            "RecordIdentifierValueAsString": "7",
            "FeatureNames": ["history"],
        },
    )
    stub.add_response(
        "get_record",
        {},
        {
            "FeatureGroupName": "g-cards",
            "RecordIdentifierValueAsString": "8",
            "FeatureNames": ["history"],
        },
    )
    sleeps: list[float] = []
    with stub:
        assert put_records(runtime, "g-cards", [record], sleep=sleeps.append) == 1
        history = get_history(runtime, "g-cards", 7)
        assert get_history(runtime, "g-cards", 8).empty
    stub.assert_no_pending_responses()
    assert len(sleeps) == 1
    pd.testing.assert_frame_equal(history, cards)


def test_a_rejected_online_record_fails_fast_and_names_it():
    runtime, stub = _stubbed("sagemaker-featurestore-runtime")
    record = [{"FeatureName": "customer_id", "ValueAsString": "7"}]
    stub.add_client_error("put_record", "ValidationException", "bad feature name")
    with stub, pytest.raises(AwsCallError, match="PutRecord g customer_id=7 failed: Valid"):
        put_records(runtime, "g", [record], sleep=lambda _: None)


BLUE_GREEN = deployment_config("canary", 10, 25, 300, 300, 3600, ["fraud-5xx", "fraud-p99"])


def _update_stub(*statuses: tuple[str, str]):
    sagemaker, stub = _stubbed("sagemaker")
    stub.add_response(
        "update_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep"},
        {
            "EndpointName": "ep",
            "EndpointConfigName": "ep-v2-b",
            "RetainAllVariantProperties": False,
            "DeploymentConfig": BLUE_GREEN,
        },
    )
    for status, config in statuses:
        stub.add_response(
            "describe_endpoint",
            {
                "EndpointName": "ep",
                "EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/ep",
                "EndpointConfigName": config,
                "EndpointStatus": status,
                "CreationTime": "2026-01-01T00:00:00Z",
                "LastModifiedTime": "2026-01-01T00:00:00Z",
                **({"FailureReason": "alarm fraud-5xx fired"} if status != "InService" else {}),
            },
            {"EndpointName": "ep"},
        )
    return sagemaker, stub


def test_update_endpoint_shifts_traffic_blue_green():
    assert BLUE_GREEN["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "WaitIntervalInSeconds": 300,
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
    }
    assert BLUE_GREEN["AutoRollbackConfiguration"] == {
        "Alarms": [{"AlarmName": "fraud-5xx"}, {"AlarmName": "fraud-p99"}]
    }
    sagemaker, stub = _update_stub(("Updating", "ep-v1-a"), ("InService", "ep-v2-b"))
    with stub:
        done = roll_out(sagemaker, "ep", "ep-v2-b", "ep-v1-a", BLUE_GREEN, 60, 0, lambda _: None)
    stub.assert_no_pending_responses()
    assert done["EndpointConfigName"] == "ep-v2-b"


@pytest.mark.parametrize(
    "statuses",
    [
        [("Updating", "ep-v1-a"), ("Failed", "ep-v1-a")],
        [("Updating", "ep-v1-a"), ("RollingBack", "ep-v1-a")],
        [("Updating", "ep-v1-a"), ("InService", "ep-v1-a")],  # rolled back already
    ],
)
def test_a_failed_update_leaves_the_previous_config_serving(statuses):
    sagemaker, stub = _update_stub(*statuses)
    with stub, pytest.raises(DeploymentError, match="ep-v1-a keeps serving"):
        roll_out(sagemaker, "ep", "ep-v2-b", "ep-v1-a", BLUE_GREEN, 60, 0, lambda _: None)


def test_linear_and_serverless_deployment_configs():
    linear = deployment_config("linear", 10, 25, 120, 60, 900, [])
    assert linear["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["LinearStepSize"] == {
        "Type": "CAPACITY_PERCENT",
        "Value": 25,
    }
    assert "AutoRollbackConfiguration" not in linear


def test_redeploying_the_same_version_is_a_noop(aws_resources, moto_url, names, tmp_path):
    endpoint = aws_resources["endpoint"]
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.json").write_text("{}")
    first = endpoint.deploy(3, model_dir)
    again = endpoint.deploy(3, model_dir)
    assert first.changed and not again.changed
    assert endpoint.deployed_version() == 3
    sagemaker = client("sagemaker", moto_url)
    configs = sagemaker.list_endpoint_configs(NameContains=names["endpoint"])["EndpointConfigs"]
    assert len(configs) == 1
    variant = sagemaker.describe_endpoint_config(
        EndpointConfigName=configs[0]["EndpointConfigName"]
    )["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.m5.large" and variant["InitialInstanceCount"] == 1
    policies = client("application-autoscaling", moto_url).describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=f"endpoint/{names['endpoint']}/variant/AllTraffic"
    )["ScalingPolicies"]
    (policy,) = policies
    spec = policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert spec["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"


def test_serverless_and_multimodel_shapes(aws_resources, moto_url, names, tmp_path):
    base = aws_resources["endpoint"]
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.json").write_text("{}")
    serverless = type(base)(
        **{
            **base._get_non_default_public_field_values(),
            "mode": "serverless",
            "serverless_provisioned_concurrency": 2,
            "endpoint_name": names["endpoint"] + "-sl",
        }
    )
    assert serverless.deploy(1, model_dir).changed
    sagemaker = client("sagemaker", moto_url)
    config = sagemaker.describe_endpoint(EndpointName=names["endpoint"] + "-sl")[
        "EndpointConfigName"
    ]
    variant = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {
        "MemorySizeInMB": 2048,
        "MaxConcurrency": 20,
        "ProvisionedConcurrency": 2,
    }
    mme = type(base)(
        **{
            **base._get_non_default_public_field_values(),
            "mode": "multimodel",
            "endpoint_name": names["endpoint"] + "-mm",
        }
    )
    assert mme.deploy(4, model_dir).detail["target_model"] == "fraud-v4.tar.gz"
    assert mme.deployed_version() == 4
    model = sagemaker.describe_model(ModelName=names["endpoint"] + "-mm-mme")
    assert model["PrimaryContainer"]["Mode"] == "MultiModel"


def test_multimodel_invocations_name_their_target_model(aws_resources, names, tmp_path):
    """moto's runtime ignores ``TargetModel``: the Stubber pins that every call names one."""
    base = aws_resources["endpoint"]
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.json").write_text("{}")
    mme = type(base)(
        **{
            **base._get_non_default_public_field_values(),
            "mode": "multimodel",
            "endpoint_name": names["endpoint"] + "-mmi",
        }
    )
    mme.deploy(5, model_dir)
    runtime = aws_client("sagemaker-runtime", mme.region_name, mme.endpoint_url)
    payload = {"transaction_id": 1, "tx_amount": 12.5}
    answer = b'{"score": 0.1}'
    with Stubber(runtime) as stub:
        for target in ("fraud-v5.tar.gz", "fraud-v3.tar.gz"):
            stub.add_response(
                "invoke_endpoint",
                {"Body": StreamingBody(io.BytesIO(answer), len(answer))},
                expected_params={
                    "EndpointName": names["endpoint"] + "-mmi",
                    "ContentType": "application/json",
                    "Accept": "application/json",
                    "Body": json.dumps(payload).encode(),
                    "TargetModel": target,
                },
            )
        assert mme.invoke(payload) == {"score": 0.1}  # the deployed version by default
        assert mme.invoke(payload, target_model="fraud-v3.tar.gz") == {"score": 0.1}
        stub.assert_no_pending_responses()
