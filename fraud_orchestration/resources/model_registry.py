"""The model registry, modelled on a SageMaker Model Package Group.

A group holds numbered versions; each starts ``PendingManualApproval`` and a person (or a
gate) moves it to ``Approved`` or ``Rejected`` with a reason -- SageMaker's three approval
statuses, so the AWS implementation maps one to one. The champion that serving loads is
the newest approved version; rolling back means rejecting it, which makes the previous
approved version the champion again.

The local store keeps a group in a folder::

    <root>/<group>/index.json                      every version's metadata, the truth
    <root>/<group>/versions/<n>/model.json         the files as registered
    <root>/<group>/versions/<n>/model_card.json
    <root>/<group>/.lock                           serialises writers (fcntl)

A version exists once ``index.json`` lists it. Its folder is filled under a temporary name
and renamed into place before the index is rewritten (atomically), so a crash at any point
leaves either no new version or a complete one; leftovers of a crash (``.tmp-*`` folders,
``.index.json.*.tmp`` files, an unlisted numbered folder) are never read. The lock is an
advisory ``flock``: it orders writers on one machine, not across network file systems.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource

from fraud_orchestration.atomic import atomic_write_bytes

MODEL_FILE = "model.json"
CARD_FILE = "model_card.json"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")

ModelSource = str | Path | Sequence[str | Path]
"""A model folder (its top-level files are registered) or a list of files."""


class ApprovalStatus(StrEnum):
    """SageMaker's ``ModelApprovalStatus`` values, spelt exactly as SageMaker spells them."""

    PENDING = "PendingManualApproval"
    APPROVED = "Approved"
    REJECTED = "Rejected"


class RegistryError(Exception):
    pass


class ChecksumMismatchError(RegistryError):
    """A registered file no longer has the bytes it was registered with."""


@dataclass(frozen=True)
class ModelVersion:
    version: int
    status: ApprovalStatus
    reason: str | None
    created_at: str
    updated_at: str
    metrics: dict[str, Any]
    files: dict[str, str]
    """File name -> sha256 hex digest of its bytes at registration."""
    card: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelVersion:
        return cls(**{**data, "status": ApprovalStatus(data["status"])})


class LocalRegistryStore:
    """The registry on a local (or mounted) file system; plain Python, no Dagster."""

    def __init__(self, root: str | Path, group: str = "fraud-model") -> None:
        self.group = group
        self.group_dir = Path(root) / group
        self.versions_dir = self.group_dir / "versions"
        self.index_path = self.group_dir / "index.json"

    def register(
        self,
        model_dir_or_files: ModelSource,
        metrics: dict[str, Any],
        card: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Copy the files in as the next version, pending approval.

        ``card`` defaults to the contents of the registered ``model_card.json``. Pickles
        are refused: a registered model must be loadable without running its bytes.
        """
        sources = _source_files(model_dir_or_files)
        if card is None:
            card = json.loads(sources[CARD_FILE].read_text()) if CARD_FILE in sources else {}
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        staging = self.versions_dir / f".tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            checksums = {}
            for name, source in sources.items():
                shutil.copyfile(source, staging / name)
                _fsync_file(staging / name)
                checksums[name] = _sha256(staging / name)
            _fsync_dir(staging)
            with self._locked():
                versions = self.list_versions()
                number = self._next_number(versions)
                os.rename(staging, self.versions_dir / str(number))
                _fsync_dir(self.versions_dir)
                now = _now()
                entry = ModelVersion(
                    version=number,
                    status=ApprovalStatus.PENDING,
                    reason=None,
                    created_at=now,
                    updated_at=now,
                    metrics=dict(metrics),
                    files=checksums,
                    card=dict(card),
                )
                self._write_index([*versions, entry])
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return entry

    def approve(self, version: int, reason: str) -> ModelVersion:
        return self._set_status(version, ApprovalStatus.APPROVED, reason)

    def reject(self, version: int, reason: str) -> ModelVersion:
        return self._set_status(version, ApprovalStatus.REJECTED, reason)

    def get(self, version: int) -> ModelVersion:
        return self._find(self.list_versions(), version)

    def list_versions(self) -> list[ModelVersion]:
        """Every version, oldest first."""
        if not self.index_path.exists():
            return []
        index = json.loads(self.index_path.read_text())
        return [ModelVersion.from_json(entry) for entry in index["versions"]]

    def champion(self) -> ModelVersion | None:
        """The newest (highest-numbered) approved version: the one to serve."""
        approved = self._approved()
        return approved[-1] if approved else None

    def previous_champion(self) -> ModelVersion | None:
        """The approved version before the champion: what a rollback would serve."""
        approved = self._approved()
        return approved[-2] if len(approved) > 1 else None

    def load_model_dir(self, version: int) -> Path:
        """The version's folder, after checking every file against its registered sha256."""
        entry = self.get(version)
        folder = self.versions_dir / str(version)
        for name, expected in entry.files.items():
            path = folder / name
            if not path.is_file():
                raise ChecksumMismatchError(f"version {version}: {name} is missing from {folder}")
            actual = _sha256(path)
            if actual != expected:
                raise ChecksumMismatchError(
                    f"version {version}: {name} has sha256 {actual}, registered as {expected}; "
                    "refusing to load a model whose bytes changed"
                )
        return folder

    def _find(self, versions: list[ModelVersion], version: int) -> ModelVersion:
        for entry in versions:
            if entry.version == version:
                return entry
        raise RegistryError(f"model group {self.group!r} has no version {version}")

    def _approved(self) -> list[ModelVersion]:
        return [v for v in self.list_versions() if v.status == ApprovalStatus.APPROVED]

    def _set_status(self, version: int, status: ApprovalStatus, reason: str) -> ModelVersion:
        if not reason or not reason.strip():
            raise ValueError(f"a reason is required to mark a version {status}")
        with self._locked():
            versions = self.list_versions()
            current = self._find(versions, version)
            updated = replace(current, status=status, reason=reason, updated_at=_now())
            self._write_index([updated if v.version == version else v for v in versions])
        return updated

    def _next_number(self, versions: list[ModelVersion]) -> int:
        """One past every number used, counting folders a crash left out of the index."""
        used = [v.version for v in versions]
        used += [int(p.name) for p in self.versions_dir.iterdir() if p.name.isdigit()]
        return max(used, default=0) + 1

    def _write_index(self, versions: list[ModelVersion]) -> None:
        index = {"group": self.group, "versions": [asdict(v) for v in versions]}
        atomic_write_bytes(self.index_path, json.dumps(index, indent=2).encode())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.group_dir.mkdir(parents=True, exist_ok=True)
        with open(self.group_dir / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class ModelRegistry(ConfigurableResource, ABC):
    """The registry as the assets see it; a SageMaker Model Registry class joins the local one."""

    @abstractmethod
    def register(
        self,
        model_dir_or_files: ModelSource,
        metrics: dict[str, Any],
        card: dict[str, Any] | None = None,
    ) -> ModelVersion: ...

    @abstractmethod
    def approve(self, version: int, reason: str) -> ModelVersion: ...

    @abstractmethod
    def reject(self, version: int, reason: str) -> ModelVersion: ...

    @abstractmethod
    def get(self, version: int) -> ModelVersion: ...

    @abstractmethod
    def list_versions(self) -> list[ModelVersion]: ...

    @abstractmethod
    def champion(self) -> ModelVersion | None: ...

    @abstractmethod
    def previous_champion(self) -> ModelVersion | None: ...

    @abstractmethod
    def load_model_dir(self, version: int) -> Path:
        """A local folder holding the version's verified files."""


class LocalModelRegistry(ModelRegistry):
    """:class:`LocalRegistryStore` as a Dagster resource."""

    root: str
    group: str = "fraud-model"

    @property
    def store(self) -> LocalRegistryStore:
        return LocalRegistryStore(Path(self.root), self.group)

    def register(
        self,
        model_dir_or_files: ModelSource,
        metrics: dict[str, Any],
        card: dict[str, Any] | None = None,
    ) -> ModelVersion:
        return self.store.register(model_dir_or_files, metrics, card)

    def approve(self, version: int, reason: str) -> ModelVersion:
        return self.store.approve(version, reason)

    def reject(self, version: int, reason: str) -> ModelVersion:
        return self.store.reject(version, reason)

    def get(self, version: int) -> ModelVersion:
        return self.store.get(version)

    def list_versions(self) -> list[ModelVersion]:
        return self.store.list_versions()

    def champion(self) -> ModelVersion | None:
        return self.store.champion()

    def previous_champion(self) -> ModelVersion | None:
        return self.store.previous_champion()

    def load_model_dir(self, version: int) -> Path:
        return self.store.load_model_dir(version)


def _source_files(model_dir_or_files: ModelSource) -> dict[str, Path]:
    if isinstance(model_dir_or_files, str | Path):
        folder = Path(model_dir_or_files)
        if not folder.is_dir():
            raise RegistryError(f"{folder} is not a folder")
        paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    else:
        paths = [Path(p) for p in model_dir_or_files]
    sources = {path.name: path for path in paths}
    if len(sources) != len(paths):
        raise RegistryError(f"two files share a name: {[str(p) for p in paths]}")
    if MODEL_FILE not in sources:
        raise RegistryError(f"a model version needs a {MODEL_FILE}; got {sorted(sources)}")
    pickles = [name for name in sources if name.endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise RegistryError(f"pickled files are never registered: {pickles}")
    return sources


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
