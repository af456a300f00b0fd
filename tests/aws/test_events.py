"""Producer -> Kinesis -> (Firehose) -> S3 landing zone, and the S3 lake itself."""

from __future__ import annotations

import gzip
import json
from datetime import date

import boto3
import pyarrow as pa
import pytest
from botocore.stub import Stubber

from fraud_orchestration.resources.aws.clients import AwsCallError, aws_client
from fraud_orchestration.resources.aws.kinesis import (
    KinesisProducer,
    delivery_stream_definition,
    ensure_delivery_stream,
    kinesis_entry,
)
from tests.aws.conftest import FIREHOSE_ROLE, REGION, client
from tests.aws.standins import deliver_stream_to_s3
from tests.conftest import event


def test_producer_batches_into_the_stream(moto_url, names):
    kinesis = client("kinesis", moto_url)
    producer = KinesisProducer(kinesis, names["stream"], seed=0)
    assert producer.ensure_stream() is True
    assert producer.ensure_stream() is False, "an existing stream is reused"
    records = [event(i, "2018-04-01T10:00:00") for i in range(1_201)]
    report = producer.send(records)
    assert (report.records, report.calls, report.resent) == (1_201, 3, 0)  # 500 + 500 + 201
    shard = kinesis.list_shards(StreamName=names["stream"])["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=names["stream"], ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    landed = kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
    assert [json.loads(r["Data"])["transaction_id"] for r in landed] == list(range(1_201))


def _kinesis_stub():
    kinesis = boto3.client("kinesis", region_name=REGION, endpoint_url="http://127.0.0.1:9")
    return kinesis, Stubber(kinesis)


def test_partial_failure_resends_only_the_failed_records():
    """moto never fails part of a PutRecords; the Stubber pins what is sent again."""
    kinesis, stub = _kinesis_stub()
    entries = [kinesis_entry(event(i, "2018-04-01T10:00:00")) for i in range(3)]
    ok = {"SequenceNumber": "1", "ShardId": "shardId-000000000000"}
    failed = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
    stub.add_response(
        "put_records",
        {"FailedRecordCount": 1, "Records": [ok, failed, ok]},
        {"StreamName": "s", "Records": entries},
    )
    stub.add_client_error(
        "put_records",
        service_error_code="ProvisionedThroughputExceededException",
        expected_params={"StreamName": "s", "Records": [entries[1]]},
    )
    stub.add_response(
        "put_records",
        {"Records": [ok]},  # the service model has FailedRecordCount >= 1, or absent
        {"StreamName": "s", "Records": [entries[1]]},
    )
    sleeps: list[float] = []
    with stub:
        report = KinesisProducer(kinesis, "s", sleep=sleeps.append, seed=1).send(
            [event(i, "2018-04-01T10:00:00") for i in range(3)]
        )
    stub.assert_no_pending_responses()
    assert (report.records, report.calls, report.resent, report.throttled_calls) == (3, 3, 1, 1)
    assert len(sleeps) == 2 and all(s >= 0 for s in sleeps)


def test_a_validation_error_fails_fast():
    kinesis, stub = _kinesis_stub()
    stub.add_client_error("put_records", service_error_code="ValidationException")
    with stub, pytest.raises(AwsCallError, match="ValidationException"):
        KinesisProducer(kinesis, "s", sleep=lambda _: None).send([event(1, "2018-04-01T10:00:00")])


def test_firehose_lands_by_event_hour_and_ingestion_dedupes(moto_url, names, aws_resources):
    """Producer -> Kinesis; the Firehose stand-in applies the declared JQ partitioning."""
    kinesis, firehose, s3 = (client(s, moto_url) for s in ("kinesis", "firehose", "s3"))
    producer = KinesisProducer(kinesis, names["stream"], seed=0)
    producer.ensure_stream()
    arn = kinesis.describe_stream_summary(StreamName=names["stream"])["StreamDescriptionSummary"][
        "StreamARN"
    ]
    definition = delivery_stream_definition(
        f"{names['stream']}-to-s3", arn, names["bucket"], "fraud", FIREHOSE_ROLE
    )
    assert ensure_delivery_stream(firehose, definition) is True
    assert ensure_delivery_stream(firehose, definition) is False
    records = [event(i, f"2018-04-02T{i % 3:02d}:15:00") for i in range(30)]
    producer.send(records + records[:5])  # at least once: five arrive twice
    keys = deliver_stream_to_s3(
        kinesis, firehose, s3, definition["DeliveryStreamName"], names["stream"]
    )
    assert [k.rsplit("/", 1)[0] for k in keys] == [
        f"fraud/landing/transactions/2018/04/02/{h:02d}" for h in range(3)
    ]
    lake = aws_resources["lake"]
    landed = lake.landing_keys(date(2018, 4, 2))
    assert len(landed) == 3 and all(key.endswith(".jsonl.gz") for key in landed)
    lines = [
        line
        for key in landed
        for line in gzip.decompress(lake.read_landing(key)).decode().splitlines()
    ]
    assert len(lines) == 35

    from fraud_orchestration.ingestion.raw import ingest_day

    day = ingest_day(date(2018, 4, 2), [(key, lake.read_landing(key)) for key in landed])
    assert (len(day.valid), day.duplicates, day.quarantined) == (30, 5, 0)


def test_partition_writes_replace_one_object(aws_resources, moto_url, names):
    lake = aws_resources["lake"]
    day = date(2018, 4, 1)
    first = lake.write_partition("t", day, pa.table({"x": [1, 2, 3]}))
    again = lake.write_partition("t", day, pa.table({"x": [4]}))
    assert first == again == f"s3://{names['bucket']}/fraud/lake/t/date=2018-04-01/data.parquet"
    listed = client("s3", moto_url).list_objects_v2(Bucket=names["bucket"], Prefix="fraud/lake/t/")
    assert [o["Key"] for o in listed["Contents"]] == ["fraud/lake/t/date=2018-04-01/data.parquet"]
    assert lake.read_partitions("t", [day])["x"].tolist() == [4]


def test_clients_take_credentials_from_the_standard_chain(moto_url):
    made = aws_client("s3", REGION, moto_url)
    assert made._request_signer._credentials.method == "env"
