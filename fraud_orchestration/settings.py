"""Environment selection: the one module that reads the process environment.

``FRAUD_ENV``            ``local`` (default, embedded parts) or ``aws``.
``FRAUD_HOME``           where the local lake, stores, registry and ``DAGSTER_HOME`` live
                         (default ``./.fraud``).
``FRAUD_FEATURE_ENGINE`` ``duckdb`` (default) or ``spark``.
``FRAUD_START_DATE``     first daily partition (default 2018-04-01, the handbook's first day).
``FRAUD_ENDPOINT_PORT``  loopback port of the local scoring endpoint (default 8080).
``FRAUD_SPARK_MASTER``   Spark master for the Spark engine (default ``local[*]``).
``FRAUD_SPARK_CONNECT_URL`` a Spark Connect URL (``sc://host:15002``); overrides the master.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENTS = ("local", "aws")
FEATURE_ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class Settings:
    env: str
    home: Path
    feature_engine: str
    start_date: str
    endpoint_port: int = 8080
    spark_master: str = "local[*]"
    spark_connect_url: str = ""

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings from ``environ`` (the process environment by default)."""
    environ = dict(os.environ if environ is None else environ)
    env = environ.get("FRAUD_ENV", "local").strip().lower()
    if env not in ENVIRONMENTS:
        raise ValueError(f"FRAUD_ENV must be one of {ENVIRONMENTS}, got {env!r}")
    engine = environ.get("FRAUD_FEATURE_ENGINE", "duckdb").strip().lower()
    if engine not in FEATURE_ENGINES:
        raise ValueError(f"FRAUD_FEATURE_ENGINE must be one of {FEATURE_ENGINES}, got {engine!r}")
    home = Path(environ.get("FRAUD_HOME", ".fraud")).expanduser().resolve()
    return Settings(
        env=env,
        home=home,
        feature_engine=engine,
        start_date=environ.get("FRAUD_START_DATE", "2018-04-01"),
        endpoint_port=int(environ.get("FRAUD_ENDPOINT_PORT", "8080")),
        spark_master=environ.get("FRAUD_SPARK_MASTER", "local[*]"),
        spark_connect_url=environ.get("FRAUD_SPARK_CONNECT_URL", ""),
    )
