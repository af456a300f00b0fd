"""The ``fraud-orchestration`` command line: what users do outside the Dagster UI."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

from fraud_orchestration.settings import SERVING_ENGINES, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    return args.handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraud-orchestration",
        description="Card-fraud detection on Dagster: simulate and land events, run the demo.",
    )
    commands = parser.add_subparsers(required=True, metavar="command")

    simulate = commands.add_parser(
        "simulate", help="land simulated transactions in the landing zone (Firehose layout)"
    )
    _simulation_arguments(simulate)
    simulate.set_defaults(handler=_simulate)

    produce = commands.add_parser(
        "produce",
        help="send simulated events to the Kinesis Data Stream (FRAUD_ENV=aws settings); "
        "creates the stream and the Firehose delivery stream to S3 if absent",
    )
    _simulation_arguments(produce)
    produce.add_argument("--shards", type=int, default=1, help="shards if the stream is created")
    produce.add_argument(
        "--no-firehose", action="store_true", help="do not create the Firehose delivery stream"
    )
    produce.set_defaults(handler=_produce)

    handbook = commands.add_parser(
        "land-handbook", help="land the Fraud Detection Handbook data set through the adapter"
    )
    handbook.add_argument("source", type=Path, help="the data set folder (holding raw/)")
    handbook.add_argument("--days", type=int, default=None, help="only the first N days")
    handbook.set_defaults(handler=_land_handbook)

    serve = commands.add_parser(
        "serve", help="run the scoring service on 127.0.0.1 (SageMaker container contract)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--model-dir", help="serve this model folder, not the champion")
    serve.add_argument("--rules", help="a JSON rule set for the fallback")
    serve.add_argument("--budget-ms", type=float, default=200.0)
    serve.add_argument("--engine", choices=SERVING_ENGINES, default="auto")
    serve.add_argument(
        "--scoring-process",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="score in a child process beside the HTTP front (the default), or in its own",
    )
    serve.set_defaults(handler=_serve)

    score = commands.add_parser("score", help="score one transaction with a running service")
    score.add_argument("transaction", help="a JSON object, or @file holding one")
    score.add_argument("--url", default="http://127.0.0.1:8080")
    score.add_argument("--features", action="store_true", help="show the computed features")
    score.set_defaults(handler=_score)

    registry = commands.add_parser("registry", help="list or inspect model registry versions")
    registry.add_argument("version", nargs="?", type=int, help="show one version in full")
    registry.set_defaults(handler=_registry)

    demo = commands.add_parser(
        "demo", help="simulate, then materialize every asset for every partition, then summarize"
    )
    _simulation_arguments(demo)
    demo.add_argument(
        "--keep-serving", action="store_true", help="leave the local scoring endpoint running"
    )
    demo.set_defaults(handler=_demo)
    return parser


def _simulation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, default=90, help="days to simulate (default 90)")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2018, 4, 1))
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift-from-day", type=int, default=None)
    parser.add_argument("--drift-amount-scale", type=float, default=1.0)
    parser.add_argument("--drift-volume-scale", type=float, default=1.0)
    parser.add_argument("--drift-new-pattern", action="store_true")


def _simulation_config(args: argparse.Namespace):
    from fraud_orchestration.simulator import SimulationConfig

    return SimulationConfig(
        n_customers=args.customers,
        n_terminals=args.terminals,
        start_date=args.start,
        n_days=args.days,
        seed=args.seed,
        drift_from_day=args.drift_from_day,
        drift_amount_scale=args.drift_amount_scale,
        drift_volume_scale=args.drift_volume_scale,
        drift_new_pattern=args.drift_new_pattern,
    )


def _simulate(args: argparse.Namespace) -> int:
    from fraud_orchestration.simulator import simulate

    settings = load_settings()
    summary = simulate(_simulation_config(args), settings.home)
    print(
        f"landed {summary.n_lines} lines ({summary.n_transactions} transactions, "
        f"fraud rate {summary.fraud_rate:.3%}) for {args.days} days under {settings.home}"
    )
    return 0


def _produce(args: argparse.Namespace) -> int:
    from fraud_orchestration.resources.aws.clients import aws_client
    from fraud_orchestration.resources.aws.kinesis import (
        KinesisProducer,
        delivery_stream_definition,
        ensure_delivery_stream,
    )
    from fraud_orchestration.simulator import iter_days
    from fraud_orchestration.simulator.records import frame_to_records

    aws = load_settings().aws
    kinesis = aws_client("kinesis", aws.region, aws.endpoint_url)
    producer = KinesisProducer(kinesis, aws.kinesis_stream)
    producer.ensure_stream(shards=args.shards)
    if not args.no_firehose:
        if not aws.bucket or not aws.firehose_role_arn:
            print(
                "error: Firehose needs FRAUD_S3_BUCKET and FRAUD_FIREHOSE_ROLE_ARN", file=sys.stderr
            )
            return 2
        arn = kinesis.describe_stream_summary(StreamName=aws.kinesis_stream)[
            "StreamDescriptionSummary"
        ]["StreamARN"]
        definition = delivery_stream_definition(
            f"{aws.kinesis_stream}-to-s3", arn, aws.bucket, aws.prefix, aws.firehose_role_arn
        )
        firehose = aws_client("firehose", aws.region, aws.endpoint_url)
        created = ensure_delivery_stream(firehose, definition)
        state = "created" if created else "exists"
        print(f"delivery stream {definition['DeliveryStreamName']} {state}")
    for day, frame in iter_days(_simulation_config(args)):
        report = producer.send(frame_to_records(frame))
        print(
            f"{day}: {report.records} events in {report.calls} PutRecords calls "
            f"({report.resent} resent, {report.throttled_calls} throttled)"
        )
    return 0


def _land_handbook(args: argparse.Namespace) -> int:
    from fraud_orchestration.simulator import handbook_days, land_handbook

    settings = load_settings()
    days = handbook_days(args.source)[: args.days]
    summary = land_handbook(args.source, settings.home, days=days)
    print(f"landed {len(summary.days)} handbook days under {settings.home}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from fraud_orchestration.serving.server import default_paths, serve

    serve(
        host=args.host,
        port=args.port,
        model_dir=args.model_dir,
        rules_path=args.rules,
        budget_ms=args.budget_ms,
        engine=args.engine,
        scoring_process=args.scoring_process,
        **default_paths(load_settings().home),
    )
    return 0


def _score(args: argparse.Namespace) -> int:
    import json

    import httpx

    from fraud_orchestration.serving.server import score_one

    text = args.transaction
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        answer = score_one(args.url, json.loads(text), features=args.features)
    except (ValueError, httpx.HTTPError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))
    return 0


def _registry(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from fraud_orchestration.resources.model_registry import LocalRegistryStore

    store = LocalRegistryStore(load_settings().home / "registry")
    if args.version is not None:
        print(json.dumps(asdict(store.get(args.version)), indent=2, default=str))
        return 0
    champion = store.champion()
    for version in store.list_versions():
        mark = "*" if champion and version.version == champion.version else " "
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted(version.metrics.items()))
        print(
            f"{mark} v{version.version:<3} {version.status:<22} {metrics}  {version.reason or ''}"
        )
    return 0


def _demo(args: argparse.Namespace) -> int:
    settings = load_settings()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    from dagster import DagsterInstance

    from fraud_orchestration.definitions import build_definitions
    from fraud_orchestration.demo import ensure_dagster_home, run_lifecycle, summary
    from fraud_orchestration.simulator import simulate

    started = time.perf_counter()
    ensure_dagster_home(settings.dagster_home)
    config = _simulation_config(args)
    print(f"Simulating {config.n_days} days into {settings.home} ...", file=sys.stderr)
    simulate(config, settings.home)
    defs = build_definitions(settings)
    with DagsterInstance.get() as instance:
        reports, models = run_lifecycle(defs, instance, config.days)
    print(summary(reports, models, time.perf_counter() - started))
    endpoint = (defs.resources or {})["endpoint"]
    if args.keep_serving:
        print(f"The scoring endpoint keeps serving at {endpoint.url}.")
    else:
        endpoint.stop()
    print(f"\nOpen the UI on these runs with `make dev` (DAGSTER_HOME={settings.dagster_home}).")
    return 0 if all(report.run_succeeded for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
