"""Schedules, both in UTC: the daily ingestion after midnight, the nightly retraining at 02:00."""

from dagster import ScheduleDefinition, build_schedule_from_partitioned_job

from fraud_orchestration.jobs import daily_ingestion_job, retraining_job

daily_ingestion_schedule = build_schedule_from_partitioned_job(
    daily_ingestion_job,
    name="daily_ingestion_schedule",
    description="00:30 UTC: yesterday's partition: raw → features → stores → scores → drift.",
    hour_of_day=0,
    minute_of_hour=30,
)

nightly_retraining_schedule = ScheduleDefinition(
    name="nightly_retraining_schedule",
    job=retraining_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    description="02:00 UTC: training set → model → champion/challenger gate → deployment.",
)
