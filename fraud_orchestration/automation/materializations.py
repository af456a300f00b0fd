"""What the newest materialization of each partition of an asset recorded."""

from __future__ import annotations

from typing import Any

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from fraud_orchestration.automation.check_history import HISTORY_LIMIT


def latest_metadata(
    instance: DagsterInstance, asset: str, partitions: list[str]
) -> dict[str, dict[str, Any]]:
    """Partition -> the metadata (plain values) of its newest materialization; a partition
    never materialized through Dagster is absent."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=partitions),
        limit=HISTORY_LIMIT,
    ).records  # newest first
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        materialization = record.asset_materialization
        if materialization is None or materialization.partition is None:
            continue
        if materialization.partition not in latest:
            metadata = materialization.metadata.items()
            latest[materialization.partition] = {key: value.value for key, value in metadata}
    return latest
