"""The feature store on SageMaker Feature Store.

Three feature groups, created if absent (creating twice is a no-op; a group whose
definition differs from the code's is reported, never silently reused):

* ``<name>`` -- the transactions' features, offline store only. Record identifier
  ``transaction_id``, event time ``event_time`` (ISO-8601 string), one feature per column
  the training set needs, typed from :data:`fraud_orchestration.features.FEATURES`.
* ``<name>-cards`` / ``<name>-terminals`` -- online store only: per card (per terminal) the
  recent transactions serving needs, as one JSON ``history`` value, event time ``as_of``.

Offline partitions are written straight to the group's resolved offline S3 location, one
Parquet object per day (``.../year=YYYY/month=MM/day=DD/data.parquet``) with SageMaker's
offline columns ``write_time``, ``api_invocation_time`` and ``is_deleted``; a re-run replaces
the day's object (one PUT, atomic), and reads de-duplicate on (record id, event time)
keeping the newest ``write_time`` (:func:`latest_writes`), as any reader of a SageMaker
offline store must. Writing the files directly (rather than ``PutRecord`` per row, which
replicates to the offline store within minutes) makes a backfilled day readable at once
and costs nothing per record.

Online records go through ``sagemaker-featurestore-runtime`` ``PutRecord`` with throttling
retried and other errors (``ValidationException``) failing fast with the group and record
named. Records of cards that left the window are not deleted; serving's windows ignore
transactions older than their reach.
"""

from __future__ import annotations

import functools
import io
import time
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError
from pydantic import Field

from fraud_orchestration.features import FEATURES, KEY_COLUMNS, LABEL_COLUMN
from fraud_orchestration.resources.aws.clients import (
    AwsCallError,
    aws_client,
    call_with_retries,
    error_code,
)
from fraud_orchestration.resources.aws.s3_lake import S3Lake, split_s3_uri
from fraud_orchestration.resources.feature_store import (
    EVENT_TIME,
    RECORD_ID,
    WRITE_TIME,
    FeatureStore,
    latest_writes,
)

KIND_TYPES = {
    "raw": "Fractional",
    "flag": "Integral",
    "count": "Integral",
    "seconds": "Integral",
    "average": "Fractional",
    "ratio": "Fractional",
}
KEY_TYPES = {
    "transaction_id": "Integral",
    "tx_datetime": "String",
    "tx_time_seconds": "Integral",
    "customer_id": "Integral",
    "terminal_id": "Integral",
    LABEL_COLUMN: "Integral",
    EVENT_TIME: "String",
}
HISTORY = "history"
AS_OF = "as_of"
ISO = "%Y-%m-%dT%H:%M:%SZ"
EMPTY_HISTORY_COLUMNS = ["transaction_id", "tx_time_seconds", "customer_id", "terminal_id"]


_ENSURED: set[tuple[str, str, str]] = set()
"""Feature groups this process has created or checked (their definitions cannot change)."""


class FeatureGroupMismatchError(Exception):
    """A feature group of that name exists with another definition."""


def feature_definitions() -> list[dict[str, str]]:
    """The transaction group's ``FeatureDefinitions``, in column order."""
    columns = {name: KEY_TYPES[name] for name in KEY_COLUMNS}
    columns.update({feature.name: KIND_TYPES[feature.kind] for feature in FEATURES})
    columns[LABEL_COLUMN] = KEY_TYPES[LABEL_COLUMN]
    columns[EVENT_TIME] = KEY_TYPES[EVENT_TIME]
    return [{"FeatureName": name, "FeatureType": kind} for name, kind in columns.items()]


def online_definitions(key: str) -> list[dict[str, str]]:
    return [
        {"FeatureName": key, "FeatureType": "Integral"},
        {"FeatureName": AS_OF, "FeatureType": "String"},
        {"FeatureName": HISTORY, "FeatureType": "String"},
    ]


def history_records(frame: pd.DataFrame, key: str, as_of: str) -> list[list[dict[str, str]]]:
    """One ``PutRecord`` ``Record`` per ``key`` value: its rows as one JSON string."""
    records = []
    for value, rows in frame.groupby(key, sort=True):
        history = rows.drop(columns=[]).to_json(orient="split", index=False)
        records.append(
            [
                {"FeatureName": key, "ValueAsString": str(int(value))},
                {"FeatureName": AS_OF, "ValueAsString": as_of},
                {"FeatureName": HISTORY, "ValueAsString": history},
            ]
        )
    return records


def put_records(
    runtime: Any,
    group: str,
    records: list[list[dict[str, str]]],
    sleep: Any = time.sleep,
) -> int:
    """``PutRecord`` each record into the online store; returns how many were written."""
    for record in records:
        call_with_retries(
            functools.partial(
                runtime.put_record,
                FeatureGroupName=group,
                Record=record,
                TargetStores=["OnlineStore"],
            ),
            f"PutRecord {group} {record[0]['FeatureName']}={record[0]['ValueAsString']}",
            sleep=sleep,
        )
    return len(records)


def get_history(runtime: Any, group: str, record_id: int, sleep: Any = time.sleep) -> pd.DataFrame:
    """The ``history`` of one online record, or an empty frame when there is none."""
    answer = call_with_retries(
        lambda: runtime.get_record(
            FeatureGroupName=group,
            RecordIdentifierValueAsString=str(int(record_id)),
            FeatureNames=[HISTORY],
        ),
        f"GetRecord {group} {record_id}",
        sleep=sleep,
    )
    values = {item["FeatureName"]: item["ValueAsString"] for item in answer.get("Record", [])}
    if HISTORY not in values:
        return pd.DataFrame(columns=EMPTY_HISTORY_COLUMNS)
    return pd.read_json(io.StringIO(values[HISTORY]), orient="split")


class SageMakerFeatureStore(FeatureStore):
    lake: S3Lake
    role_arn: str = Field(description="Role the feature groups use (FRAUD_SAGEMAKER_ROLE_ARN).")
    region_name: str = "us-east-1"
    endpoint_url: str = Field(default="", description="Only to point at moto/LocalStack.")
    create_timeout_seconds: float = 600.0

    @property
    def _client(self) -> Any:
        return aws_client("sagemaker", self.region_name, self.endpoint_url)

    @property
    def _runtime(self) -> Any:
        return aws_client("sagemaker-featurestore-runtime", self.region_name, self.endpoint_url)

    @property
    def card_group(self) -> str:
        return f"{self.feature_group}-cards"

    @property
    def terminal_group(self) -> str:
        return f"{self.feature_group}-terminals"

    def ensure_feature_groups(self) -> dict[str, bool]:
        """Create the three groups if absent; ``{name: created}``."""
        return {**self.ensure_offline_group(), **self.ensure_online_groups()}

    def ensure_offline_group(self) -> dict[str, bool]:
        created = self._ensure(
            self.feature_group,
            RECORD_ID,
            EVENT_TIME,
            feature_definitions(),
            OfflineStoreConfig={
                "S3StorageConfig": {"S3Uri": self.lake.uri("feature-store")},
                "DisableGlueTableCreation": False,
            },
        )
        return {self.feature_group: created}

    def ensure_online_groups(self) -> dict[str, bool]:
        return {
            group: self._ensure(
                group,
                key,
                AS_OF,
                online_definitions(key),
                OnlineStoreConfig={"EnableOnlineStore": True},
            )
            for group, key in (
                (self.card_group, "customer_id"),
                (self.terminal_group, "terminal_id"),
            )
        }

    def offline_uri(self) -> str:
        """The transaction group's resolved offline-store location (creating it if needed)."""
        self.ensure_offline_group()
        described = self._client.describe_feature_group(FeatureGroupName=self.feature_group)
        return described["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"]

    def write_offline(self, day: date, features: pd.DataFrame) -> str:
        columns = [
            item["FeatureName"]
            for item in feature_definitions()
            if item["FeatureName"] != EVENT_TIME
        ]
        missing = sorted(set(columns) - set(features.columns))
        if missing:
            raise ValueError(f"features lack the feature group's columns {missing}")
        now = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None)).as_unit("us")
        frame = features[columns].assign(
            **{
                EVENT_TIME: pd.to_datetime(features["tx_datetime"]).dt.strftime(ISO),
                WRITE_TIME: now,
                "api_invocation_time": now,
                "is_deleted": False,
            }
        )
        buffer = io.BytesIO()
        pq.write_table(
            pa.Table.from_pandas(frame, preserve_index=False), buffer, compression="snappy"
        )
        uri = self._day_uri(self.offline_uri(), day)
        bucket, key = split_s3_uri(uri)
        self.lake.client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        return uri

    def read_offline(self, days: list[date]) -> pd.DataFrame:
        root = self.offline_uri()
        present = set(self.offline_days())
        frames = [
            pd.read_parquet(io.BytesIO(self.lake.read_uri(self._day_uri(root, day))))
            for day in days
            if day in present
        ]
        if not frames:
            return pd.DataFrame()
        records = pd.concat(frames, ignore_index=True)
        records = records[~records["is_deleted"]].drop(
            columns=["is_deleted", "api_invocation_time"]
        )
        return latest_writes(records)

    def offline_days(self) -> list[date]:
        bucket, prefix = split_s3_uri(self.offline_uri())
        paginator = self.lake.client.get_paginator("list_objects_v2")
        days = set()
        for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/"):
            for item in page.get("Contents", []):
                parts = dict(part.split("=", 1) for part in item["Key"].split("/") if "=" in part)
                if {"year", "month", "day"} <= set(parts) and item["Key"].endswith(".parquet"):
                    days.add(date(int(parts["year"]), int(parts["month"]), int(parts["day"])))
        return sorted(days)

    def publish_online(
        self, cards: pd.DataFrame, terminals: pd.DataFrame, as_of_seconds: int
    ) -> dict:
        self.ensure_online_groups()
        as_of = datetime.fromtimestamp(as_of_seconds, UTC).strftime(ISO)
        runtime = self._runtime
        return {
            "cards": put_records(
                runtime, self.card_group, history_records(cards, "customer_id", as_of)
            ),
            "terminals": put_records(
                runtime, self.terminal_group, history_records(terminals, "terminal_id", as_of)
            ),
        }

    def online_history(
        self, customer_id: int, terminal_id: int
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        runtime = self._runtime
        return (
            get_history(runtime, self.card_group, customer_id),
            get_history(runtime, self.terminal_group, terminal_id),
        )

    @staticmethod
    def _day_uri(root: str, day: date) -> str:
        return f"{root}/year={day:%Y}/month={day:%m}/day={day:%d}/data.parquet"

    def _ensure(
        self,
        name: str,
        record_id: str,
        event_time: str,
        definitions: list[dict[str, str]],
        **stores: Any,
    ) -> bool:
        """Create-then-check: ``CreateFeatureGroup``, and on ``ResourceInUse`` compare the
        existing definition (race-free when two runs start at once). Remembered per
        process, so a run asks once per group."""
        remembered = (self.region_name, self.endpoint_url, name)
        if remembered in _ENSURED:
            return False
        client = self._client
        try:
            client.create_feature_group(
                FeatureGroupName=name,
                RecordIdentifierFeatureName=record_id,
                EventTimeFeatureName=event_time,
                FeatureDefinitions=definitions,
                RoleArn=self.role_arn,
                Description="fraud_orchestration (fraud_orchestration.features.FEATURES)",
                **stores,
            )
            created = True
        except ClientError as error:
            if error_code(error) != "ResourceInUse":
                raise AwsCallError(f"CreateFeatureGroup {name}: {error}") from error
            existing = client.describe_feature_group(FeatureGroupName=name)
            _check_same(name, existing, record_id, event_time, definitions)
            created = False
        self._wait_created(name)
        _ENSURED.add(remembered)
        return created

    def _wait_created(self, name: str) -> None:
        deadline = time.monotonic() + self.create_timeout_seconds
        while True:
            status = self._client.describe_feature_group(FeatureGroupName=name)
            state = status["FeatureGroupStatus"]
            if state == "Created":
                return
            if state == "CreateFailed" or time.monotonic() > deadline:
                raise AwsCallError(
                    f"feature group {name} is {state}: {status.get('FailureReason', '')}"
                )
            time.sleep(2)


def _check_same(
    name: str,
    existing: dict[str, Any],
    record_id: str,
    event_time: str,
    definitions: list[dict[str, str]],
) -> None:
    have = {item["FeatureName"]: item["FeatureType"] for item in existing["FeatureDefinitions"]}
    want = {item["FeatureName"]: item["FeatureType"] for item in definitions}
    if (
        have != want
        or existing["RecordIdentifierFeatureName"] != record_id
        or existing["EventTimeFeatureName"] != event_time
    ):
        changed = sorted(set(have.items()) ^ set(want.items()))
        raise FeatureGroupMismatchError(
            f"feature group {name} exists with another definition (differences: {changed}); "
            "feature groups cannot change types: create a new group name for the new features"
        )
