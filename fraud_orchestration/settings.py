"""Environment selection: the one module that reads the process environment.

``FRAUD_ENV``            ``local`` (default, embedded parts) or ``aws``.
``FRAUD_HOME``           where the local lake, stores, registry and ``DAGSTER_HOME`` live
                         (default ``./.fraud``).
``FRAUD_FEATURE_ENGINE`` ``duckdb`` (default) or ``spark``.
``FRAUD_START_DATE``     first daily partition (default 2018-04-01, the handbook's first day).
``FRAUD_ENDPOINT_PORT``  loopback port of the local scoring endpoint (default 8080).
``FRAUD_SPARK_MASTER``   Spark master for the Spark engine (default ``local[*]``).
``FRAUD_SPARK_CONNECT_URL`` a Spark Connect URL (``sc://host:15002``); overrides the master.

AWS mode (``FRAUD_ENV=aws``; see docs/aws.md). Credentials are never settings: boto3 finds
them through the standard chain (environment, profile, SSO, instance or task role).

``FRAUD_S3_BUCKET``          the bucket holding the lake, feature store, models (required).
``FRAUD_S3_PREFIX``          key prefix inside the bucket (default ``fraud``).
``FRAUD_AWS_REGION``         region (default ``us-east-1``).
``FRAUD_AWS_ENDPOINT_URL``   one endpoint for every AWS API (moto, LocalStack); empty = AWS.
``FRAUD_SAGEMAKER_ROLE_ARN`` execution role for training jobs, models and feature groups.
``FRAUD_FIREHOSE_ROLE_ARN``  role Firehose assumes to read Kinesis and write S3.
``FRAUD_KINESIS_STREAM``     the Kinesis Data Stream the producer writes (default fraud-events).
``FRAUD_ENDPOINT_NAME``      the SageMaker endpoint (default ``fraud-endpoint``).
``FRAUD_FEATURE_GROUP``      the feature group (default ``transaction-features``).
``FRAUD_MODEL_PACKAGE_GROUP`` the Model Package Group (default ``fraud-model``).
``FRAUD_ENDPOINT_MODE``      ``realtime`` (default), ``serverless`` or ``multimodel``.
``FRAUD_ROLLBACK_ALARMS``    comma-separated CloudWatch alarm names for auto-rollback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENTS = ("local", "aws")
FEATURE_ENGINES = ("duckdb", "spark")
SERVING_ENGINES = ("auto", "compiled", "duckdb", "sqlite")
"""How the scoring service runs the feature SQL (see ``serving.features``)."""
ENDPOINT_MODES = ("realtime", "serverless", "multimodel")


@dataclass(frozen=True)
class AwsSettings:
    """Where the AWS resources live; no credentials (the standard chain supplies them)."""

    bucket: str = ""
    prefix: str = "fraud"
    region: str = "us-east-1"
    endpoint_url: str = ""
    sagemaker_role_arn: str = ""
    firehose_role_arn: str = ""
    kinesis_stream: str = "fraud-events"
    endpoint_name: str = "fraud-endpoint"
    feature_group: str = "transaction-features"
    model_package_group: str = "fraud-model"
    endpoint_mode: str = "realtime"
    rollback_alarms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    env: str
    home: Path
    feature_engine: str
    start_date: str
    endpoint_port: int = 8080
    spark_master: str = "local[*]"
    spark_connect_url: str = ""
    aws: AwsSettings = AwsSettings()

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings from ``environ`` (the process environment by default)."""
    environ = dict(os.environ if environ is None else environ)
    env = environ.get("FRAUD_ENV", "local").strip().lower()
    if env not in ENVIRONMENTS:
        raise ValueError(f"FRAUD_ENV must be one of {ENVIRONMENTS}, got {env!r}")
    engine = environ.get("FRAUD_FEATURE_ENGINE", "duckdb").strip().lower()
    if engine not in FEATURE_ENGINES:
        raise ValueError(f"FRAUD_FEATURE_ENGINE must be one of {FEATURE_ENGINES}, got {engine!r}")
    home = Path(environ.get("FRAUD_HOME", ".fraud")).expanduser().resolve()
    return Settings(
        env=env,
        home=home,
        feature_engine=engine,
        start_date=environ.get("FRAUD_START_DATE", "2018-04-01"),
        endpoint_port=int(environ.get("FRAUD_ENDPOINT_PORT", "8080")),
        spark_master=environ.get("FRAUD_SPARK_MASTER", "local[*]"),
        spark_connect_url=environ.get("FRAUD_SPARK_CONNECT_URL", ""),
        aws=_aws_settings(environ, required=env == "aws"),
    )


KERNEL_DIRECTORY_VARIABLE = "FRAUD_KERNEL_DIR"


def kernel_directory(environ: dict[str, str] | None = None) -> Path:
    """Where the scoring service writes the feature kernels it generates
    (``serving.row_sql``): ``FRAUD_KERNEL_DIR``, by default the user's cache directory.
    Numba caches their machine code beside them, so a restart does not compile again."""
    environ = dict(os.environ if environ is None else environ)
    configured = environ.get(KERNEL_DIRECTORY_VARIABLE, "").strip()
    if configured:
        return Path(configured).expanduser()
    cache = environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(cache) / "fraud-orchestration" / "kernels"


def _aws_settings(environ: dict[str, str], required: bool) -> AwsSettings:
    mode = environ.get("FRAUD_ENDPOINT_MODE", "realtime").strip().lower()
    if mode not in ENDPOINT_MODES:
        raise ValueError(f"FRAUD_ENDPOINT_MODE must be one of {ENDPOINT_MODES}, got {mode!r}")
    bucket = environ.get("FRAUD_S3_BUCKET", "").strip()
    if required and not bucket:
        raise ValueError("FRAUD_ENV=aws needs FRAUD_S3_BUCKET (the bucket of the lake).")
    alarms = environ.get("FRAUD_ROLLBACK_ALARMS", "")
    return AwsSettings(
        bucket=bucket,
        prefix=environ.get("FRAUD_S3_PREFIX", "fraud").strip("/"),
        region=environ.get("FRAUD_AWS_REGION", "us-east-1"),
        endpoint_url=environ.get("FRAUD_AWS_ENDPOINT_URL", ""),
        sagemaker_role_arn=environ.get("FRAUD_SAGEMAKER_ROLE_ARN", ""),
        firehose_role_arn=environ.get("FRAUD_FIREHOSE_ROLE_ARN", ""),
        kinesis_stream=environ.get("FRAUD_KINESIS_STREAM", "fraud-events"),
        endpoint_name=environ.get("FRAUD_ENDPOINT_NAME", "fraud-endpoint"),
        feature_group=environ.get("FRAUD_FEATURE_GROUP", "transaction-features"),
        model_package_group=environ.get("FRAUD_MODEL_PACKAGE_GROUP", "fraud-model"),
        endpoint_mode=mode,
        rollback_alarms=tuple(name.strip() for name in alarms.split(",") if name.strip()),
    )
