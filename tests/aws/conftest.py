"""The aws tier: every AWS resource against moto run as a real HTTP server.

``ThreadedMotoServer`` listens on 127.0.0.1; the process environment gets fake credentials
and ``AWS_ENDPOINT_URL`` so that anything started from here -- the ``fraud-orchestration``
CLI, Dagster subprocesses -- reaches the same server and sees the same state. Each test
gets its own bucket, stream and endpoint names, so tests share the server but not state.

moto runs the control plane only. Two parts of AWS that run code are played here by
clearly named stand-ins (``standins.py``): the built-in XGBoost training container and
Firehose's Kinesis-to-S3 delivery. Where moto lacks an API (the Feature Store runtime,
``UpdateEndpoint``) the tests use ``botocore.stub.Stubber``, which checks each request
against the real service model.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import boto3
import pytest

from fraud_orchestration.resources.environments import build_resources
from fraud_orchestration.settings import Settings, load_settings
from tests.aws.standins import TrainingContainerStandIn
from tests.conftest import free_port

pytestmark = pytest.mark.aws
REGION = "us-east-1"
ACCOUNT = "123456789012"
SAGEMAKER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/fraud-sagemaker-execution"
FIREHOSE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/fraud-firehose-delivery"
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/aws/" in str(item.fspath):
            item.add_marker(pytest.mark.aws)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    saved = {name: os.environ.get(name) for name in [*FAKE_ENV, "AWS_PROFILE", "AWS_ENDPOINT_URL"]}
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    os.environ.update(FAKE_ENV)
    os.environ.pop("AWS_PROFILE", None)
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        yield url
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def names() -> dict[str, str]:
    """Names unique to the test (the moto server lives for the whole session)."""
    tag = uuid.uuid4().hex[:8]
    return {
        "bucket": f"fraud-test-{tag}",
        "stream": f"fraud-events-{tag}",
        "endpoint": f"fraud-ep-{tag}",
        "group": f"fraud-model-{tag}",
        "feature_group": f"tx-features-{tag}",
    }


@pytest.fixture
def aws_settings(moto_url: str, names: dict[str, str], tmp_path) -> Settings:
    boto3.client("s3", region_name=REGION, endpoint_url=moto_url).create_bucket(
        Bucket=names["bucket"]
    )
    return load_settings(aws_environ(moto_url, names, tmp_path))


def aws_environ(moto_url: str, names: dict[str, str], tmp_path) -> dict[str, str]:
    return {
        **FAKE_ENV,
        "FRAUD_ENV": "aws",
        "FRAUD_HOME": str(tmp_path / "fraud_home"),
        "FRAUD_S3_BUCKET": names["bucket"],
        "FRAUD_S3_PREFIX": "fraud",
        "FRAUD_AWS_REGION": REGION,
        "FRAUD_AWS_ENDPOINT_URL": moto_url,
        "FRAUD_SAGEMAKER_ROLE_ARN": SAGEMAKER_ROLE,
        "FRAUD_FIREHOSE_ROLE_ARN": FIREHOSE_ROLE,
        "FRAUD_KINESIS_STREAM": names["stream"],
        "FRAUD_ENDPOINT_NAME": names["endpoint"],
        "FRAUD_FEATURE_GROUP": names["feature_group"],
        "FRAUD_MODEL_PACKAGE_GROUP": names["group"],
    }


@pytest.fixture
def aws_resources(aws_settings: Settings) -> dict:
    """The resource set ``FRAUD_ENV=aws`` selects, pointed at the moto server."""
    return build_resources(aws_settings)


def client(service: str, moto_url: str):
    return boto3.client(service, region_name=REGION, endpoint_url=moto_url)


@pytest.fixture
def training_container(moto_url: str) -> Iterator[TrainingContainerStandIn]:
    """Plays the SageMaker built-in XGBoost container (moto creates jobs, runs nothing)."""
    standin = TrainingContainerStandIn(client("sagemaker", moto_url), client("s3", moto_url))
    standin.start()
    yield standin
    standin.stop()
    assert not standin.errors, standin.errors
