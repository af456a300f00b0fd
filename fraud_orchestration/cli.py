"""The ``fraud-orchestration`` command line: what users do outside the Dagster UI."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

from fraud_orchestration.settings import load_settings


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

    handbook = commands.add_parser(
        "land-handbook", help="land the Fraud Detection Handbook data set through the adapter"
    )
    handbook.add_argument("source", type=Path, help="the data set folder (holding raw/)")
    handbook.add_argument("--days", type=int, default=None, help="only the first N days")
    handbook.set_defaults(handler=_land_handbook)

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


def _land_handbook(args: argparse.Namespace) -> int:
    from fraud_orchestration.simulator import handbook_days, land_handbook

    settings = load_settings()
    days = handbook_days(args.source)[: args.days]
    summary = land_handbook(args.source, settings.home, days=days)
    print(f"landed {len(summary.days)} handbook days under {settings.home}")
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
    endpoint = defs.resources["endpoint"]
    if args.keep_serving:
        print(f"The scoring endpoint keeps serving at {endpoint.url}.")
    else:
        endpoint.stop()
    print(f"\nOpen the UI on these runs with `make dev` (DAGSTER_HOME={settings.dagster_home}).")
    return 0 if all(report.run_succeeded for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
