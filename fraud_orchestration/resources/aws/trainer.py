"""Training on SageMaker with the built-in XGBoost algorithm container.

The same protocol as the local trainer (:func:`fraud_orchestration.modeling.lifecycle.fit`),
as two training jobs: the first early-stops on the validation days (``early_stopping_rounds``
on the ``validation`` channel), the second refits on the whole train window with the rounds
the first chose. The decision threshold is picked here on the held-out days with the first
job's model, exactly as locally.

Data contract of the built-in container: CSV without a header, the label in the first
column, ``ContentType text/csv``. Its model artifact is ``model.tar.gz`` holding
``xgboost-model`` in XGBoost's own format (containers 1.3-1 and later use
``Booster.save_model``, never a pickle); the booster has no feature names (CSV has none),
so they are set here from the training set's feature list.
"""

from __future__ import annotations

import io
import tarfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import xgboost as xgb
from pydantic import Field

from fraud_orchestration.modeling.trainer import (
    TrainedModel,
    TrainingParams,
    f1_threshold,
    gain_importance,
)
from fraud_orchestration.resources.aws.clients import aws_client
from fraud_orchestration.resources.aws.s3_lake import S3Lake, split_s3_uri
from fraud_orchestration.resources.trainer import Trainer
from fraud_orchestration.schema import LABEL
from fraud_orchestration.training.dataset import TrainingSet

MODEL_MEMBER = "xgboost-model"
XGBOOST_VERSION = "1.7-1"


class TrainingJobError(Exception):
    """A training job failed, stopped or outlived its timeout."""


def xgboost_image_uri(region: str, version: str = XGBOOST_VERSION) -> str:
    """The built-in XGBoost image for ``region`` (the SageMaker SDK's bundled table)."""
    from sagemaker.core import image_uris  # slow import (~4 s): only when training

    return image_uris.retrieve("xgboost", region=region, version=version)


def hyperparameters(params: TrainingParams, scale_pos_weight: float) -> dict[str, str]:
    """:class:`TrainingParams` in the built-in algorithm's names (all values strings)."""
    values: dict[str, Any] = {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "num_round": params.n_estimators,
        "max_depth": params.max_depth,
        "eta": params.learning_rate,
        "min_child_weight": params.min_child_weight,
        "subsample": params.subsample,
        "colsample_bytree": params.colsample_bytree,
        "tree_method": params.tree_method,
        "max_bin": params.max_bin,
        "scale_pos_weight": scale_pos_weight,
        "seed": params.seed,
        "nthread": params.n_jobs,
    }
    if params.early_stopping_rounds:
        values["early_stopping_rounds"] = params.early_stopping_rounds
    return {name: str(value) for name, value in values.items()}


def training_csv(frame: pd.DataFrame, features: list[str]) -> bytes:
    """Label first, then the features in model order; no header, no index."""
    return frame[[LABEL, *features]].to_csv(header=False, index=False).encode()


class SageMakerTrainer(Trainer):
    """Fits the challenger with SageMaker training jobs (built-in XGBoost image)."""

    lake: S3Lake
    role_arn: str = Field(description="Execution role of the jobs (FRAUD_SAGEMAKER_ROLE_ARN).")
    region_name: str = "us-east-1"
    endpoint_url: str = Field(default="", description="Only to point at moto/LocalStack.")
    image_uri: str = Field(default="", description="Empty: the built-in XGBoost image.")
    xgboost_version: str = XGBOOST_VERSION
    instance_type: str = "ml.m5.xlarge"
    volume_size_gb: int = 10
    max_runtime_seconds: int = 3600
    poll_seconds: float = 15.0
    timeout_seconds: float = 7200.0
    artifact_wait_seconds: int = Field(
        default=60,
        description="How long to wait for model.tar.gz after the job reports Completed.",
    )

    @property
    def _sagemaker(self) -> Any:
        return aws_client("sagemaker", self.region_name, self.endpoint_url)

    def fit(
        self, training_set: TrainingSet, features: list[str], params: TrainingParams
    ) -> TrainedModel:
        held_out = training_set.validation_mask
        fit_rows, valid_rows = training_set.train[~held_out], training_set.train[held_out]
        run = f"fraud-{training_set.manifest['content_hash'][:10]}-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        spw = _scale_pos_weight(params, fit_rows)
        valid_uri = self._upload(f"{run}/validation.csv", training_csv(valid_rows, features))
        first = self._run_job(
            f"{run}-es",
            self._upload(f"{run}/fit.csv", training_csv(fit_rows, features)),
            valid_uri,
            hyperparameters(params, spw),
        )
        best = _best_iteration(first)
        first = first[: best + 1]
        first.feature_names = list(features)
        threshold = f1_threshold(
            valid_rows[LABEL].to_numpy(), first.inplace_predict(valid_rows[features])
        )
        refit_params = replace(params, n_estimators=best + 1, early_stopping_rounds=None)
        refit_spw = _scale_pos_weight(params, training_set.train)
        refit = self._run_job(
            f"{run}-refit",
            self._upload(f"{run}/train.csv", training_csv(training_set.train, features)),
            valid_uri,
            hyperparameters(refit_params, refit_spw),
        )
        refit.feature_names = list(features)
        return TrainedModel(
            booster=refit,
            features=list(features),
            params=replace(refit_params, scale_pos_weight=refit_spw),
            best_iteration=refit.num_boosted_rounds() - 1,
            training_seconds=round(time.perf_counter() - started, 3),
            feature_importance=gain_importance(refit, list(features)),
            decision_threshold=threshold,
            trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    def _upload(self, name: str, data: bytes) -> str:
        """One object per channel; the channel's S3Uri is its own prefix."""
        key = f"training-jobs/{name.rsplit('.', 1)[0]}/{name.rsplit('/', 1)[-1]}"
        uri = self.lake.write_object(key, data)
        return uri.rsplit("/", 1)[0] + "/"

    def job_request(
        self, name: str, train_uri: str, valid_uri: str, hyper: dict[str, str]
    ) -> dict[str, Any]:
        """The ``CreateTrainingJob`` request (File mode, one instance, both channels)."""

        def channel(channel_name: str, uri: str) -> dict[str, Any]:
            return {
                "ChannelName": channel_name,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "text/csv",
                "CompressionType": "None",
            }

        return {
            "TrainingJobName": name,
            "AlgorithmSpecification": {
                "TrainingImage": self.image_uri
                or xgboost_image_uri(self.region_name, self.xgboost_version),
                "TrainingInputMode": "File",
            },
            "RoleArn": self.role_arn,
            "HyperParameters": hyper,
            "InputDataConfig": [channel("train", train_uri), channel("validation", valid_uri)],
            "OutputDataConfig": {"S3OutputPath": self.lake.uri("training-jobs/output")},
            "ResourceConfig": {
                "InstanceType": self.instance_type,
                "InstanceCount": 1,
                "VolumeSizeInGB": self.volume_size_gb,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": self.max_runtime_seconds},
        }

    def _run_job(
        self, name: str, train_uri: str, valid_uri: str, hyper: dict[str, str]
    ) -> xgb.Booster:
        client = self._sagemaker
        client.create_training_job(**self.job_request(name, train_uri, valid_uri, hyper))
        job = self._wait(client, name)
        artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
        bucket, key = split_s3_uri(artifact)
        s3 = self.lake.client
        # Real SageMaker has uploaded the artifact when it reports Completed. moto reports
        # Completed at once while the test's stand-in container is still writing, and other
        # emulators may too; the waiter costs one HEAD request when the object is there.
        s3.get_waiter("object_exists").wait(
            Bucket=bucket,
            Key=key,
            WaiterConfig={"Delay": 1, "MaxAttempts": max(1, self.artifact_wait_seconds)},
        )
        return load_artifact(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def _wait(self, client: Any, name: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            job = client.describe_training_job(TrainingJobName=name)
            status = job["TrainingJobStatus"]
            if status == "Completed":
                return job
            if status in ("Failed", "Stopped"):
                raise TrainingJobError(
                    f"training job {name} {status}: {job.get('FailureReason', 'no reason given')}"
                )
            if time.monotonic() > deadline:
                client.stop_training_job(TrainingJobName=name)
                raise TrainingJobError(
                    f"training job {name} still {status} after {self.timeout_seconds} s; stopped"
                )
            time.sleep(self.poll_seconds)


def load_artifact(tar_gz: bytes) -> xgb.Booster:
    """The booster inside a built-in container's ``model.tar.gz`` (no code is unpickled)."""
    with tarfile.open(fileobj=io.BytesIO(tar_gz), mode="r:gz") as archive:
        member = archive.extractfile(MODEL_MEMBER)
        if member is None:
            raise TrainingJobError(f"model.tar.gz has no {MODEL_MEMBER}")
        raw = member.read()
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return booster


def model_artifact(booster: xgb.Booster) -> bytes:
    """``model.tar.gz`` as the built-in container writes it: ``xgboost-model`` only."""
    raw = bytes(booster.save_raw(raw_format="json"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(MODEL_MEMBER)
        info.size = len(raw)
        archive.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


def _best_iteration(booster: xgb.Booster) -> int:
    """The early-stopped round, saved in the model's attributes; else its last round."""
    best = booster.attr("best_iteration")
    return int(best) if best is not None else booster.num_boosted_rounds() - 1


def _scale_pos_weight(params: TrainingParams, frame: pd.DataFrame) -> float:
    if params.scale_pos_weight is not None:
        return float(params.scale_pos_weight)
    positives = int(frame[LABEL].sum())
    return float((len(frame) - positives) / positives)
