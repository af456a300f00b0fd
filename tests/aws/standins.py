"""Stand-ins for the two parts of AWS that run code, which moto (control plane only) lacks.

Nothing here is hidden behind the resources: the tests start these explicitly.

* :class:`TrainingContainerStandIn` plays SageMaker's built-in XGBoost container. moto
  accepts ``CreateTrainingJob`` and reports the job ``Completed`` at once but trains
  nothing; this thread watches for new jobs, reads their ``train``/``validation`` channels
  (label-first CSV) and hyperparameters as the container would, trains with the project's
  own XGBoost code and writes ``model.tar.gz`` (``xgboost-model``) to the job's
  ``S3ModelArtifacts``.
* :func:`deliver_stream_to_s3` plays Firehose's Kinesis-source delivery: moto stores the
  delivery stream but neither polls the Kinesis stream nor partitions dynamically. It
  reads the stream, evaluates the delivery stream's *declared* JQ query with the real
  ``jq`` binary, and writes gzipped objects under the declared prefix and file extension.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import threading
import time
from typing import Any

import pandas as pd

from fraud_orchestration.modeling.trainer import TrainingParams, train_model
from fraud_orchestration.resources.aws.s3_lake import split_s3_uri
from fraud_orchestration.resources.aws.trainer import model_artifact
from fraud_orchestration.schema import LABEL


class TrainingContainerStandIn:
    def __init__(self, sagemaker: Any, s3: Any) -> None:
        self.sagemaker = sagemaker
        self.s3 = s3
        self.trained: list[str] = []
        self.errors: list[str] = []
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="xgboost-container", daemon=True)

    def start(self) -> None:
        self._seen = {
            job["TrainingJobName"]
            for job in self.sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
        }
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            jobs = self.sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
            for job in jobs:
                name = job["TrainingJobName"]
                if name in self._seen:
                    continue
                self._seen.add(name)
                try:
                    self.train(name)
                    self.trained.append(name)
                except Exception as error:  # reported by the fixture at teardown
                    self.errors.append(f"{name}: {error!r}")
            time.sleep(0.5)

    def train(self, name: str) -> None:
        job = self.sagemaker.describe_training_job(TrainingJobName=name)
        channels = {
            channel["ChannelName"]: self._read_channel(
                channel["DataSource"]["S3DataSource"]["S3Uri"]
            )
            for channel in job["InputDataConfig"]
        }
        hyper = job["HyperParameters"]
        features = [c for c in channels["train"].columns if c != LABEL]
        params = TrainingParams(
            n_estimators=int(hyper["num_round"]),
            max_depth=int(hyper["max_depth"]),
            learning_rate=float(hyper["eta"]),
            min_child_weight=float(hyper["min_child_weight"]),
            subsample=float(hyper["subsample"]),
            colsample_bytree=float(hyper["colsample_bytree"]),
            tree_method=hyper["tree_method"],
            max_bin=int(hyper["max_bin"]),
            scale_pos_weight=float(hyper["scale_pos_weight"]),
            early_stopping_rounds=int(hyper["early_stopping_rounds"])
            if "early_stopping_rounds" in hyper
            else None,
            seed=int(hyper["seed"]),
            n_jobs=int(hyper["nthread"]),
        )
        model = train_model(channels["train"], channels["validation"], features, params)
        booster = model.booster
        booster.feature_names = None  # CSV input: the container's booster has no names
        bucket, key = split_s3_uri(job["ModelArtifacts"]["S3ModelArtifacts"])
        self.s3.put_object(Bucket=bucket, Key=key, Body=model_artifact(booster))

    def _read_channel(self, uri: str) -> pd.DataFrame:
        bucket, prefix = split_s3_uri(uri)
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        frames = [
            pd.read_csv(
                io.BytesIO(self.s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()),
                header=None,
            )
            for item in sorted(listed, key=lambda item: item["Key"])
        ]
        frame = pd.concat(frames, ignore_index=True)
        frame.columns = [LABEL, *(f"f{i}" for i in range(frame.shape[1] - 1))]
        return frame


def deliver_stream_to_s3(
    kinesis: Any, firehose: Any, s3: Any, delivery_stream: str, stream: str
) -> list[str]:
    """Move every record of ``stream`` to S3 as the delivery stream declares; the keys."""
    description = firehose.describe_delivery_stream(DeliveryStreamName=delivery_stream)[
        "DeliveryStreamDescription"
    ]
    destination = description["Destinations"][0]["ExtendedS3DestinationDescription"]
    processor = destination["ProcessingConfiguration"]["Processors"][0]
    query = next(
        p["ParameterValue"]
        for p in processor["Parameters"]
        if p["ParameterName"] == "MetadataExtractionQuery"
    )
    records = _read_stream(kinesis, stream)
    keys = _jq(query, records)
    groups: dict[str, list[bytes]] = {}
    for record, partition in zip(records, keys, strict=True):
        prefix = re.sub(
            r"!\{partitionKeyFromQuery:(\w+)\}",
            lambda m, keys=partition: keys[m[1]],
            destination["Prefix"],
        )
        groups.setdefault(prefix, []).append(record)
    bucket = destination["BucketARN"].removeprefix("arn:aws:s3:::")
    written = []
    for number, (prefix, group) in enumerate(sorted(groups.items())):
        key = f"{prefix}{delivery_stream}-1-{number:06d}{destination.get('FileExtension', '')}"
        body = b"".join(group)
        if destination.get("CompressionFormat") == "GZIP":
            body = gzip.compress(body, mtime=0)
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        written.append(key)
    return written


def _read_stream(kinesis: Any, stream: str) -> list[bytes]:
    records = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            records += [item["Data"] for item in answer["Records"]]
            if not answer["Records"] or answer.get("MillisBehindLatest", 0) == 0:
                break
            iterator = answer.get("NextShardIterator")
    return records


def _jq(query: str, records: list[bytes]) -> list[dict[str, str]]:
    """The real ``jq`` over every record (one JSON document each), one result per record."""
    out = subprocess.run(
        ["jq", "-c", query], input=b"".join(records), capture_output=True, check=True
    ).stdout
    return [json.loads(line) for line in out.decode().splitlines()]
