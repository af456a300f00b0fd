"""The lake on S3, through ``dagster_aws.s3.S3Resource``.

Layout under ``s3://<bucket>/<prefix>/`` (the same relative keys as the local lake)::

    landing/transactions/YYYY/MM/DD/HH/*.jsonl.gz    what Firehose delivers (immutable)
    lake/<table>/date=YYYY-MM-DD/data.parquet        one object per daily partition
    training_set/<hash>/..., training_set/CURRENT    training sets

A partition is exactly one object, so replacing it is a single ``PutObject``: S3 makes a
PUT atomic (readers see the old or the new object, never a mix), which is what makes
re-running a partition idempotent without a temporary name and a rename.
"""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from fraud_orchestration.resources.lake import Lake
from fraud_orchestration.schema import LANDING_PREFIX


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class S3Lake(Lake):
    """The landing zone and the partitioned tables in one bucket, under one prefix."""

    s3: S3Resource
    bucket: str = Field(description="The bucket (FRAUD_S3_BUCKET).")
    prefix: str = Field(default="fraud", description="Key prefix (FRAUD_S3_PREFIX).")

    _client: Any = PrivateAttr(default=None)

    @property
    def client(self) -> Any:
        """One client per resource instance (``get_client`` builds a new one per call)."""
        if self._client is None:
            self._client = self.s3.get_client()
        return self._client

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def uri(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self.key(relative)}"

    def list_keys(self, relative_prefix: str) -> list[str]:
        """Relative keys of every object under ``relative_prefix``, sorted."""
        paginator = self.client.get_paginator("list_objects_v2")
        keys = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key(relative_prefix)):
            keys += [item["Key"] for item in page.get("Contents", [])]
        strip = len(self.key(""))
        return sorted(key[strip:] for key in keys)

    def landing_keys(self, day: date) -> list[str]:
        folder = f"{LANDING_PREFIX}/{day:%Y/%m/%d}/"
        return [
            key
            for key in self.list_keys(folder)
            if key.endswith(".jsonl.gz") and not key.rsplit("/", 1)[-1].startswith(".")
        ]

    def read_landing(self, key: str) -> bytes:
        return self.read_object(key)

    def put_landing(self, key: str, data: bytes) -> None:
        """Land one object (the simulator's sink; Firehose writes these in production)."""
        self.client.put_object(Bucket=self.bucket, Key=self.key(key), Body=data)

    def table_uri(self, table: str, day: date) -> str:
        return self.uri(_table_key(table, day))

    def partition_exists(self, table: str, day: date) -> bool:
        return self.object_exists(_table_key(table, day))

    def write_partition(self, table: str, day: date, data: pa.Table) -> str:
        buffer = io.BytesIO()
        pq.write_table(data, buffer, compression="zstd")
        return self.write_object(_table_key(table, day), buffer.getvalue())

    def write_object(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=self.key(key), Body=data)
        return self.uri(key)

    def read_object(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.key(key))["Body"].read()

    def object_exists(self, key: str) -> bool:
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.key(key), MaxKeys=1)
        return any(item["Key"] == self.key(key) for item in listed.get("Contents", []))

    def read_uri(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def upload_file(self, path: str, uri: str) -> None:
        bucket, key = split_s3_uri(uri)
        self.client.upload_file(path, bucket, key)

    def download_file(self, uri: str, path: str) -> None:
        bucket, key = split_s3_uri(uri)
        self.client.download_file(bucket, key, path)

    def _open(self, uri: str) -> io.BytesIO:
        return io.BytesIO(self.read_uri(uri))


class S3LandingSink:
    """The simulator's :class:`~fraud_orchestration.simulator.landing.LandingSink` on S3."""

    def __init__(self, lake: S3Lake) -> None:
        self.lake = lake

    def put(self, key: str, data: bytes) -> None:
        self.lake.put_landing(key, data)


def _table_key(table: str, day: date) -> str:
    return f"lake/{table}/date={day.isoformat()}/data.parquet"
