"""The whole lifecycle in AWS mode, end to end with ``materialize``, against the moto server:
land (the ``produce`` CLI -> Kinesis -> Firehose stand-in, and S3 landing objects) ->
raw -> features -> feature group (offline store) -> training set -> two training jobs ->
Model Package Group (gate sets ModelApprovalStatus) -> endpoint (create, then no-op)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from dagster import DagsterInstance, materialize

from fraud_orchestration.assets.deployment import fraud_endpoint
from fraud_orchestration.assets.feature_store import offline_feature_store
from fraud_orchestration.assets.features import transaction_features
from fraud_orchestration.assets.ingestion import landing_events, raw_transactions
from fraud_orchestration.assets.models import fraud_model
from fraud_orchestration.assets.scoring import transaction_scores
from fraud_orchestration.assets.training import training_set
from fraud_orchestration.resources.aws.s3_lake import S3LandingSink
from fraud_orchestration.simulator import SimulationConfig, simulate
from tests.assets.test_model_lifecycle import SMALL_WINDOWS
from tests.aws.conftest import aws_environ, client
from tests.aws.standins import deliver_stream_to_s3

DAYS = 12
DAILY = [landing_events, raw_transactions, transaction_features, offline_feature_store]


def test_lifecycle_in_aws_mode(
    moto_url, names, aws_settings, aws_resources, training_container, tmp_path
):
    config = SimulationConfig(
        n_customers=400,
        n_terminals=800,
        n_days=DAYS,
        seed=3,
        compromised_customers_per_day=2,
        compromised_terminals_per_day=2,
    )
    simulate(config, S3LandingSink(aws_resources["lake"]))
    first = config.days[0]
    env = {**os.environ, **aws_environ(moto_url, names, tmp_path)}
    produced = subprocess.run(
        [
            sys.executable,
            "-m",
            "fraud_orchestration.cli",
            "produce",
            "--days",
            "1",
            "--customers",
            "400",
            "--terminals",
            "800",
            "--seed",
            "3",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert produced.returncode == 0, produced.stderr
    assert "delivery stream" in produced.stdout and "created" in produced.stdout
    kinesis, firehose, s3 = (client(s, moto_url) for s in ("kinesis", "firehose", "s3"))
    delivered = deliver_stream_to_s3(
        kinesis, firehose, s3, f"{names['stream']}-to-s3", names["stream"]
    )
    assert delivered and all(f"/{first:%Y/%m/%d}/" in key for key in delivered)

    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        for day in config.days:
            result = materialize(
                DAILY, partition_key=day.isoformat(), resources=aws_resources, instance=instance
            )
            assert result.success, day
            raw = result.asset_materializations_for_node("raw_transactions")[0].metadata
            if day == first:  # landed twice (S3 objects and Kinesis): every copy a duplicate
                assert raw["duplicates"].value == raw["valid"].value > 0
            else:
                assert raw["duplicates"].value == 0

        result = materialize(
            [training_set, fraud_model, fraud_endpoint],
            resources=aws_resources,
            instance=instance,
            run_config=SMALL_WINDOWS,
        )
        assert result.success
        gate = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert gate["champion_challenger_gate"].passed, gate["champion_challenger_gate"].description

        last = (config.days[0] + timedelta(days=DAYS - 1)).isoformat()
        scores = materialize(
            [transaction_scores], partition_key=last, resources=aws_resources, instance=instance
        )
        assert scores.success
        again = materialize([fraud_endpoint], resources=aws_resources, instance=instance)
        assert (
            again.asset_materializations_for_node("fraud_endpoint")[0].metadata["changed"].value
            is False
        )

    sagemaker = client("sagemaker", moto_url)
    group = sagemaker.describe_feature_group(FeatureGroupName=names["feature_group"])
    assert group["RecordIdentifierFeatureName"] == "transaction_id"
    offline = group["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"]
    assert aws_resources["feature_store"].offline_days() == config.days
    assert offline.startswith(f"s3://{names['bucket']}/fraud/feature-store/")

    assert len(training_container.trained) == 2  # early-stopping job, then the refit
    job = sagemaker.describe_training_job(TrainingJobName=training_container.trained[0])
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("sagemaker-xgboost:1.7-1")

    packages = sagemaker.list_model_packages(ModelPackageGroupName=names["group"])
    (package,) = packages["ModelPackageSummaryList"]
    assert package["ModelApprovalStatus"] == "Approved"
    registry = aws_resources["model_registry"]
    assert registry.champion().version == 1
    assert (registry.load_model_dir(1) / "model.json").is_file()

    endpoint = sagemaker.describe_endpoint(EndpointName=names["endpoint"])
    assert endpoint["EndpointStatus"] == "InService"
    assert "-v1-" in endpoint["EndpointConfigName"]
    configs = sagemaker.list_endpoint_configs(NameContains=names["endpoint"])["EndpointConfigs"]
    assert len(configs) == 1, "the no-op redeploy created no new config"
    targets = client("application-autoscaling", moto_url).describe_scalable_targets(
        ServiceNamespace="sagemaker"
    )["ScalableTargets"]
    assert any(
        t["ResourceId"] == f"endpoint/{names['endpoint']}/variant/AllTraffic" for t in targets
    )
