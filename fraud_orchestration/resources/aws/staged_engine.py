"""DuckDB over S3 partitions, by staging them through a local temporary folder.

The embedded DuckDB engine reads and writes local Parquet paths; reading ``s3://`` directly
would need DuckDB's ``httpfs`` extension, downloaded at run time (not possible offline, and
one more credential path). A day's look-back is at most 38 small partitions, so copying
them down, running THE feature SQL unchanged and uploading the one output object is simple
and keeps a single code path. Data that outgrows one machine belongs to the Spark engine
(``FRAUD_FEATURE_ENGINE=spark`` reading ``s3a://``), which this class does not replace.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fraud_orchestration.resources.aws.s3_lake import S3Lake
from fraud_orchestration.resources.feature_engine import DuckDBFeatureEngine, FeatureBuild


class S3StagedDuckDBEngine(DuckDBFeatureEngine):
    """:class:`DuckDBFeatureEngine` whose sources and destination may be ``s3://`` URIs."""

    lake: S3Lake

    def build(
        self, sources: list[str], start_seconds: int, end_seconds: int, destination: str
    ) -> FeatureBuild:
        with tempfile.TemporaryDirectory(prefix="fraud-stage-") as folder:
            local_sources = []
            for number, source in enumerate(sources):
                if source.startswith("s3://"):
                    path = str(Path(folder) / f"source-{number:03d}.parquet")
                    self.lake.download_file(source, path)
                    local_sources.append(path)
                else:
                    local_sources.append(source)
            if not destination.startswith("s3://"):
                return super().build(local_sources, start_seconds, end_seconds, destination)
            output = str(Path(folder) / "output.parquet")
            build = super().build(local_sources, start_seconds, end_seconds, output)
            self.lake.upload_file(output, destination)
        return FeatureBuild(rows=build.rows, uri=destination)
