"""The event source on AWS: a producer into a Kinesis Data Stream, and the Firehose delivery
stream that moves the stream into the S3 landing zone.

Delivery is at least once: a resent record may arrive twice (a ``put_records`` whose answer
was lost, a Firehose retry). ``raw_transactions`` de-duplicates on ``transaction_id`` and
counts the duplicates, so a second copy never becomes a second transaction.

Firehose names objects by arrival time unless told otherwise; the landing zone must be laid
out by *event* time (``YYYY/MM/DD/HH`` of ``tx_datetime``), because the daily partitions read
one day's folder. The delivery stream therefore uses dynamic partitioning with a JQ query
over ``tx_datetime``; records whose ``tx_datetime`` cannot be read go to the error prefix
(``landing-errors/``), not to a day.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from fraud_orchestration.resources.aws.clients import (
    AwsCallError,
    backoff_seconds,
    error_code,
    is_throttling,
)
from fraud_orchestration.schema import LANDING_PREFIX

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
"""``PutRecords`` limits: 500 records and 5 MiB (data plus partition keys) per request."""

EVENT_TIME_QUERY = (
    "{year: .tx_datetime[0:4], month: .tx_datetime[5:7], "
    "day: .tx_datetime[8:10], hour: .tx_datetime[11:13]}"
)
"""Firehose dynamic-partitioning keys (JQ 1.6): the event's UTC hour, from its ISO time."""


class ProducerError(Exception):
    """Records could not be delivered within the retry budget."""


@dataclass
class ProduceReport:
    records: int = 0
    calls: int = 0
    resent: int = 0
    """Records sent again after a partial failure (``FailedRecordCount > 0``)."""
    throttled_calls: int = 0
    """Whole calls refused (``ProvisionedThroughputExceededException`` and the like)."""
    failures_by_code: dict[str, int] = field(default_factory=dict)


def kinesis_entry(record: dict[str, Any]) -> dict[str, Any]:
    """One ``PutRecords`` entry: the event as one JSON line, keyed by card.

    The partition key is the card, so one card's events stay in order within a shard; the
    trailing newline makes Firehose's concatenation of records JSON lines.
    """
    line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
    return {"Data": line.encode("utf-8"), "PartitionKey": str(record.get("customer_id", "none"))}


def batches(entries: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Entries in request-sized groups (at most 500 records and 5 MiB)."""
    batch: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        entry_size = len(entry["Data"]) + len(entry["PartitionKey"].encode())
        if batch and (len(batch) == MAX_RECORDS_PER_CALL or size + entry_size > MAX_BYTES_PER_CALL):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry_size
    if batch:
        yield batch


class KinesisProducer:
    """Sends events with ``PutRecords``: batched, throttling retried with exponential backoff
    and jitter, and on partial failure only the failed records sent again."""

    def __init__(
        self,
        client: Any,
        stream_name: str,
        max_attempts: int = 8,
        base_seconds: float = 0.1,
        cap_seconds: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        self.client = client
        self.stream_name = stream_name
        self.max_attempts = max_attempts
        self.base_seconds = base_seconds
        self.cap_seconds = cap_seconds
        self.sleep = sleep
        self.rng = random.Random(seed)

    def ensure_stream(self, shards: int = 1) -> bool:
        """Create the stream unless it exists; wait until it is active. True if created."""
        try:
            self.client.describe_stream_summary(StreamName=self.stream_name)
            created = False
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise
            self.client.create_stream(StreamName=self.stream_name, ShardCount=shards)
            created = True
        self.client.get_waiter("stream_exists").wait(
            StreamName=self.stream_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        return created

    def send(self, records: Iterable[dict[str, Any]]) -> ProduceReport:
        report = ProduceReport()
        for batch in batches(kinesis_entry(record) for record in records):
            self._send_batch(batch, report)
            report.records += len(batch)
        return report

    def _send_batch(self, pending: list[dict[str, Any]], report: ProduceReport) -> None:
        for attempt in range(self.max_attempts):
            report.calls += 1
            try:
                answer = self.client.put_records(StreamName=self.stream_name, Records=pending)
            except ClientError as error:
                if not is_throttling(error):
                    raise AwsCallError(
                        f"PutRecords to {self.stream_name} failed: {error_code(error)}"
                    ) from error
                report.throttled_calls += 1
                self._wait(attempt)
                continue
            if answer.get("FailedRecordCount", 0) == 0:
                return
            failed = [
                (entry, result)
                for entry, result in zip(pending, answer["Records"], strict=True)
                if result.get("ErrorCode")
            ]
            for _, result in failed:
                code = result["ErrorCode"]
                report.failures_by_code[code] = report.failures_by_code.get(code, 0) + 1
            pending = [entry for entry, _ in failed]
            report.resent += len(pending)
            self._wait(attempt)
        raise ProducerError(
            f"{len(pending)} records not accepted by {self.stream_name} after "
            f"{self.max_attempts} attempts ({report.failures_by_code or 'throttled'})"
        )

    def _wait(self, attempt: int) -> None:
        self.sleep(backoff_seconds(attempt, self.base_seconds, self.cap_seconds, self.rng))


def delivery_stream_definition(
    name: str,
    stream_arn: str,
    bucket: str,
    prefix: str,
    role_arn: str,
) -> dict[str, Any]:
    """The ``CreateDeliveryStream`` request: Kinesis source -> S3 landing zone (event time).

    Dynamic partitioning needs a buffer of at least 64 MiB; Firehose flushes on whichever of
    size or 60 s comes first, so a quiet stream still lands within about a minute.
    """
    root = f"{prefix}/" if prefix else ""
    keys = "/".join(f"!{{partitionKeyFromQuery:{k}}}" for k in ("year", "month", "day", "hour"))
    return {
        "DeliveryStreamName": name,
        "DeliveryStreamType": "KinesisStreamAsSource",
        "KinesisStreamSourceConfiguration": {"KinesisStreamARN": stream_arn, "RoleARN": role_arn},
        "ExtendedS3DestinationConfiguration": {
            "RoleARN": role_arn,
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": f"{root}{LANDING_PREFIX}/{keys}/",
            "ErrorOutputPrefix": f"{root}landing-errors/!{{firehose:error-output-type}}/"
            "!{timestamp:yyyy/MM/dd}/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
            "CompressionFormat": "GZIP",
            "FileExtension": ".jsonl.gz",
            "DynamicPartitioningConfiguration": {
                "Enabled": True,
                "RetryOptions": {"DurationInSeconds": 300},
            },
            "ProcessingConfiguration": {
                "Enabled": True,
                "Processors": [
                    {
                        "Type": "MetadataExtraction",
                        "Parameters": [
                            {
                                "ParameterName": "MetadataExtractionQuery",
                                "ParameterValue": EVENT_TIME_QUERY,
                            },
                            {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"},
                        ],
                    }
                ],
            },
        },
    }


def ensure_delivery_stream(client: Any, definition: dict[str, Any]) -> bool:
    """Create the delivery stream unless one of that name exists. True if created."""
    name = definition["DeliveryStreamName"]
    try:
        client.describe_delivery_stream(DeliveryStreamName=name)
        return False
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
    try:
        client.create_delivery_stream(**definition)
    except ClientError as error:  # created concurrently by another producer
        if error_code(error) != "ResourceInUseException":
            raise
        return False
    return True
