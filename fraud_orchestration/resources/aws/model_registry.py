"""The model registry on SageMaker: one Model Package Group, one model package per version.

A version's files (``model.json``, ``model_card.json``) and a ``model.tar.gz`` for the
serving container go to ``s3://<bucket>/<prefix>/registry/<group>/<uuid>/``; the package
records the artifact in its ``InferenceSpecification`` and each file's sha256 in
``CustomerMetadataProperties`` (``sha256:<file>``), with the test metrics
(``metric:<name>``). Loading downloads the files and refuses any whose bytes changed.

The version number is SageMaker's ``ModelPackageVersion``; the status is its
``ModelApprovalStatus`` and the reason its ``ApprovalDescription``. The champion is the
newest ``Approved`` package, exactly as in the local registry.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from pydantic import Field

from fraud_orchestration.resources.aws.clients import aws_client, error_code
from fraud_orchestration.resources.aws.s3_lake import S3Lake, split_s3_uri
from fraud_orchestration.resources.aws.trainer import MODEL_MEMBER, xgboost_image_uri
from fraud_orchestration.resources.model_registry import (
    CARD_FILE,
    MODEL_FILE,
    ApprovalStatus,
    ChecksumMismatchError,
    ModelRegistry,
    ModelSource,
    ModelVersion,
    RegistryError,
    _source_files,
)

SHA_KEY = "sha256:"
METRIC_KEY = "metric:"
ARTIFACTS_KEY = "artifacts"


def model_tarball(files: dict[str, bytes]) -> bytes:
    """Deterministic ``model.tar.gz``: every registered file, plus ``xgboost-model`` (the
    same XGBoost JSON bytes under the name the built-in XGBoost container loads)."""
    members = {**files, MODEL_MEMBER: files[MODEL_FILE]}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(members[name]), 0, 0o644
            archive.addfile(info, io.BytesIO(members[name]))
    return buffer.getvalue()


class SageMakerModelRegistry(ModelRegistry):
    lake: S3Lake
    group: str = "fraud-model"
    region_name: str = "us-east-1"
    endpoint_url: str = Field(default="", description="Only to point at moto/LocalStack.")
    inference_image_uri: str = Field(
        default="", description="Serving image recorded in each package; empty: built-in XGBoost."
    )
    cache_dir: str = Field(
        default="", description="Where verified files are downloaded; empty: a temp folder."
    )

    @property
    def _client(self) -> Any:
        return aws_client("sagemaker", self.region_name, self.endpoint_url)

    def ensure_group(self) -> bool:
        """Create the Model Package Group unless it exists. True if created."""
        client = self._client
        try:
            client.describe_model_package_group(ModelPackageGroupName=self.group)
            return False
        except ClientError as error:
            if error_code(error) not in ("ValidationException", "ResourceNotFound"):
                raise
        client.create_model_package_group(
            ModelPackageGroupName=self.group,
            ModelPackageGroupDescription="Card-fraud XGBoost models (fraud_orchestration)",
        )
        return True

    def register(
        self,
        model_dir_or_files: ModelSource,
        metrics: dict[str, Any],
        card: dict[str, Any] | None = None,
    ) -> ModelVersion:
        sources = _source_files(model_dir_or_files)
        files = {name: path.read_bytes() for name, path in sources.items()}
        if card is None:
            card = json.loads(files[CARD_FILE]) if CARD_FILE in files else {}
        files[CARD_FILE] = json.dumps(card, indent=2, sort_keys=True).encode()
        folder = f"registry/{self.group}/{uuid.uuid4().hex}"
        for name, data in files.items():
            self.lake.write_object(f"{folder}/{name}", data)
        artifact = self.lake.write_object(f"{folder}/model.tar.gz", model_tarball(files))
        self.ensure_group()
        properties = {
            ARTIFACTS_KEY: self.lake.uri(folder),
            **{
                f"{SHA_KEY}{name}": hashlib.sha256(data).hexdigest() for name, data in files.items()
            },
            **{f"{METRIC_KEY}{name}": repr(float(value)) for name, value in metrics.items()},
        }
        arn = self._client.create_model_package(
            ModelPackageGroupName=self.group,
            ModelPackageDescription=f"XGBoost, training set {card.get('training_set', '?')}",
            ModelApprovalStatus=ApprovalStatus.PENDING.value,
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": self.inference_image_uri or xgboost_image_uri(self.region_name),
                        "ModelDataUrl": artifact,
                    }
                ],
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["application/json", "text/csv"],
            },
            CustomerMetadataProperties=properties,
        )["ModelPackageArn"]
        return self._version(self._client.describe_model_package(ModelPackageName=arn))

    def approve(self, version: int, reason: str) -> ModelVersion:
        return self._set_status(version, ApprovalStatus.APPROVED, reason)

    def reject(self, version: int, reason: str) -> ModelVersion:
        return self._set_status(version, ApprovalStatus.REJECTED, reason)

    def get(self, version: int) -> ModelVersion:
        return self._version(self._describe(version))

    def list_versions(self) -> list[ModelVersion]:
        return [self._version(package) for package in self._packages()]

    def champion(self) -> ModelVersion | None:
        approved = [v for v in self.list_versions() if v.status == ApprovalStatus.APPROVED]
        return approved[-1] if approved else None

    def previous_champion(self) -> ModelVersion | None:
        approved = [v for v in self.list_versions() if v.status == ApprovalStatus.APPROVED]
        return approved[-2] if len(approved) > 1 else None

    def artifact_uri(self, version: int) -> str:
        """The version's ``model.tar.gz`` (what a SageMaker Model's ModelDataUrl names)."""
        properties = self._describe(version).get("CustomerMetadataProperties") or {}
        return f"{properties[ARTIFACTS_KEY]}/model.tar.gz"

    def load_model_dir(self, version: int) -> Path:
        package = self._describe(version)
        properties = package.get("CustomerMetadataProperties") or {}
        if ARTIFACTS_KEY not in properties:
            raise RegistryError(f"version {version} records no artifacts (not registered here?)")
        root = Path(self.cache_dir or Path(tempfile.gettempdir()) / "fraud-registry-cache")
        folder = root / self.group / str(version) / uuid.uuid4().hex[:8]
        folder.mkdir(parents=True, exist_ok=True)
        for key, expected in properties.items():
            if not key.startswith(SHA_KEY):
                continue
            name = key.removeprefix(SHA_KEY)
            data = self.lake.read_uri(f"{properties[ARTIFACTS_KEY]}/{name}")
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected:
                raise ChecksumMismatchError(
                    f"version {version}: {name} has sha256 {actual}, registered as {expected}; "
                    "refusing to load a model whose bytes changed"
                )
            (folder / name).write_bytes(data)
        return folder

    def _set_status(self, version: int, status: ApprovalStatus, reason: str) -> ModelVersion:
        if not reason or not reason.strip():
            raise ValueError(f"a reason is required to mark a version {status}")
        package = self._describe(version)
        self._client.update_model_package(
            ModelPackageArn=package["ModelPackageArn"],
            ModelApprovalStatus=status.value,
            ApprovalDescription=reason[:1024],
            # Re-sent unchanged so the update is self-contained: some emulators (moto)
            # replace the whole map on update; SageMaker merges, so this changes nothing.
            CustomerMetadataProperties=package.get("CustomerMetadataProperties") or {},
        )
        return self.get(version)

    def _packages(self) -> list[dict[str, Any]]:
        client = self._client
        try:
            pages = client.get_paginator("list_model_packages").paginate(
                ModelPackageGroupName=self.group, SortBy="CreationTime", SortOrder="Ascending"
            )
            summaries = [item for page in pages for item in page["ModelPackageSummaryList"]]
        except ClientError as error:
            if error_code(error) in ("ValidationException", "ResourceNotFound"):
                return []
            raise
        packages = [
            client.describe_model_package(ModelPackageName=item["ModelPackageArn"])
            for item in summaries
        ]
        return sorted(packages, key=lambda package: package["ModelPackageVersion"])

    def _describe(self, version: int) -> dict[str, Any]:
        for package in self._packages():
            if package["ModelPackageVersion"] == version:
                return package
        raise RegistryError(f"model package group {self.group!r} has no version {version}")

    def _version(self, package: dict[str, Any]) -> ModelVersion:
        properties = package.get("CustomerMetadataProperties") or {}
        card = {}
        if ARTIFACTS_KEY in properties:
            card = json.loads(self.lake.read_uri(f"{properties[ARTIFACTS_KEY]}/{CARD_FILE}"))
        created = _iso(package.get("CreationTime"))
        return ModelVersion(
            version=int(package["ModelPackageVersion"]),
            status=ApprovalStatus(package["ModelApprovalStatus"]),
            reason=package.get("ApprovalDescription") or None,
            created_at=created,
            updated_at=_iso(package.get("LastModifiedTime")) or created,
            metrics={
                key.removeprefix(METRIC_KEY): float(value)
                for key, value in properties.items()
                if key.startswith(METRIC_KEY)
            },
            files={
                key.removeprefix(SHA_KEY): value
                for key, value in properties.items()
                if key.startswith(SHA_KEY)
            },
            card=card,
        )


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return str(value or "")


__all__ = ["SageMakerModelRegistry", "model_tarball", "split_s3_uri"]
