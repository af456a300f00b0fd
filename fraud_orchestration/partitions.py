"""Daily partitions (UTC) shared by every partitioned asset, check and job."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from dagster import DailyPartitionsDefinition

from fraud_orchestration.settings import load_settings

LOOKBACK_DAYS = 37
"""The longest feature window (30 days) plus the terminal label delay (7 days)."""

daily_partitions = DailyPartitionsDefinition(
    start_date=load_settings().start_date, timezone="UTC", fmt="%Y-%m-%d"
)


def partition_day(partition_key: str) -> date:
    return date.fromisoformat(partition_key)


def day_bounds_seconds(day: date) -> tuple[int, int]:
    """Epoch seconds of the day's start (inclusive) and end (exclusive), UTC."""
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    return start, start + 86_400


def lookback_days(day: date, days: int = LOOKBACK_DAYS) -> list[date]:
    """The day itself and the ``days`` days before it, oldest first."""
    return [day - timedelta(days=offset) for offset in range(days, -1, -1)]
