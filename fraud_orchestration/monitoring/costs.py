"""Monthly cost of four ways to serve the model on SageMaker, for a measured load.

The price table is configuration: it states its date and source, and is meant to be
replaced by the operator's own (region, instance type, negotiated discounts). The defaults
are us-east-1 on-demand list prices as published on https://aws.amazon.com/sagemaker/pricing/
and were NOT re-read from this sandbox (it has no route to that page): check them before
relying on the figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PriceTable:
    as_of: str = "2024-06 (list prices; not re-verified here)"
    source: str = "https://aws.amazon.com/sagemaker/pricing/ us-east-1 on-demand"
    instance_type: str = "ml.m5.large"
    instance_per_hour: float = 0.115
    serverless_per_gb_second: float = 0.00002
    serverless_per_gb_processed: float = 0.016
    batch_instance_per_hour: float = 0.115


@dataclass(frozen=True)
class Load:
    requests_per_day: float
    p99_latency_ms: float
    payload_kb: float = 1.0
    models: int = 1
    """Models that would share one multi-model endpoint (e.g. one per fraud type)."""


@dataclass(frozen=True)
class Option:
    name: str
    monthly_usd: float
    note: str


def estimate(
    load: Load,
    prices: PriceTable,
    min_instances: int = 2,
    requests_per_instance_second: float = 200.0,
    serverless_memory_gb: float = 2.0,
    batch_rows_per_second: float = 50_000.0,
) -> list[Option]:
    """``requests_per_instance_second`` and ``batch_rows_per_second`` are throughput
    figures for one instance; take them from the serving benchmark."""
    per_second_peak = load.requests_per_day / 86_400 * 3  # a daily peak three times the mean
    instances = max(min_instances, math.ceil(per_second_peak / requests_per_instance_second))
    realtime = instances * prices.instance_per_hour * 24 * 30
    monthly_requests = load.requests_per_day * 30
    busy_seconds = monthly_requests * load.p99_latency_ms / 1000
    serverless = (
        busy_seconds * serverless_memory_gb * prices.serverless_per_gb_second
        + monthly_requests * load.payload_kb / 1024**2 * 2 * prices.serverless_per_gb_processed
    )
    batch_hours = max(monthly_requests / batch_rows_per_second / 3600, 30 * 0.1)
    return [
        Option(
            f"real-time, {instances} x {prices.instance_type}",
            round(realtime, 2),
            f"always on; {min_instances} instances minimum for availability",
        ),
        Option(
            f"serverless, {serverless_memory_gb:g} GB",
            round(serverless, 2),
            "pay per use; a cold start (seconds) after idle periods breaks a 200 ms budget "
            "unless provisioned concurrency is bought",
        ),
        Option(
            f"multi-model, {load.models} models on {instances} x {prices.instance_type}",
            round(realtime, 2),
            f"{load.models} models share the instances: {realtime / load.models:.2f} USD each",
        ),
        Option(
            "batch transform",
            round(batch_hours * prices.batch_instance_per_hour, 2),
            "no real-time answers: only for the nightly batch scores",
        ),
    ]


def as_markdown(options: list[Option], load: Load, prices: PriceTable) -> str:
    rows = "".join(f"| {o.name} | {o.monthly_usd:,.2f} | {o.note} |\n" for o in options)
    return (
        f"Load: {load.requests_per_day:,.0f} requests/day, p99 {load.p99_latency_ms:.1f} ms. "
        f"Prices: {prices.source}, as of {prices.as_of}.\n\n"
        "| option | USD / month | note |\n|---|---|---|\n" + rows
    )
