"""boto3 clients and the retry loop shared by the AWS resources.

Credentials are never passed in: boto3's default chain (environment variables, shared
profile, SSO, container or instance role) supplies them, so nothing secret sits in
config, in the Dagster UI or in logs.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

T = TypeVar("T")

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalServerError",
    }
)
"""Errors that mean "try again later"; anything else (ValidationException...) fails fast."""


class AwsCallError(Exception):
    """An AWS call failed for good: a client error, or throttling beyond the retry budget."""


@functools.cache
def aws_client(service: str, region_name: str, endpoint_url: str = "", **config: Any) -> Any:
    """A boto3 client; ``endpoint_url`` (moto, LocalStack, a VPC endpoint) when given.

    One client per (service, region, endpoint, config) per process: creating a client loads
    botocore's service and endpoint models (tens of milliseconds, far more on a busy
    machine), and clients are thread-safe. Credentials are resolved and refreshed by the
    client itself.

    botocore's own retries use the ``standard`` mode; :func:`call_with_retries` adds the
    project's loop where a call must be retried beyond that (or tested without a network).
    """
    session = boto3.session.Session(region_name=region_name)
    return session.client(
        service,
        endpoint_url=endpoint_url or None,
        config=Config(retries={"mode": "standard", "max_attempts": 3}, **config),
    )


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_throttling(error: ClientError) -> bool:
    return error_code(error) in THROTTLING_CODES


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0, min(cap, base * 2**attempt))


def call_with_retries(
    call: Callable[[], T],
    what: str,
    attempts: int = 6,
    base_seconds: float = 0.2,
    cap_seconds: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    seed: int | None = None,
) -> T:
    """Run ``call``, retrying throttling with backoff; fail fast (and clearly) otherwise."""
    rng = random.Random(seed)
    for attempt in range(attempts):
        try:
            return call()
        except ClientError as error:
            message = error.response.get("Error", {}).get("Message", "")
            if not is_throttling(error):
                raise AwsCallError(f"{what} failed: {error_code(error)}: {message}") from error
            if attempt == attempts - 1:
                raise AwsCallError(
                    f"{what} still throttled after {attempts} attempts: {message}"
                ) from error
            sleep(backoff_seconds(attempt, base_seconds, cap_seconds, rng))
    raise AssertionError("unreachable")
