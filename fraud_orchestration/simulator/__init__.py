"""Simulated card transactions and their Firehose-style landing (see ``generator``)."""

from fraud_orchestration.simulator.bad_records import (
    BAD_ID_OFFSET,
    BadRecordConfig,
    BadRecordManifest,
    inject_bad_records,
)
from fraud_orchestration.simulator.generator import (
    FRAME_DTYPES,
    SimulationConfig,
    compromised_customers,
    compromised_terminals,
    customer_profiles,
    generate,
    generate_day,
    iter_days,
    terminal_profiles,
)
from fraud_orchestration.simulator.handbook import (
    default_handbook_dir,
    handbook_days,
    land_handbook,
    read_handbook_day,
)
from fraud_orchestration.simulator.landing import (
    DaySummary,
    LandingSink,
    LocalLandingSink,
    SimulationSummary,
    clear_day,
    land_frame,
    land_lines,
    landing_key,
    simulate,
    simulate_day,
)
from fraud_orchestration.simulator.records import frame_to_lines, frame_to_records, record_to_line

__all__ = [
    "BAD_ID_OFFSET",
    "FRAME_DTYPES",
    "BadRecordConfig",
    "BadRecordManifest",
    "DaySummary",
    "LandingSink",
    "LocalLandingSink",
    "SimulationConfig",
    "SimulationSummary",
    "clear_day",
    "compromised_customers",
    "compromised_terminals",
    "customer_profiles",
    "default_handbook_dir",
    "frame_to_lines",
    "frame_to_records",
    "generate",
    "generate_day",
    "handbook_days",
    "inject_bad_records",
    "iter_days",
    "land_frame",
    "land_handbook",
    "land_lines",
    "landing_key",
    "read_handbook_day",
    "record_to_line",
    "simulate",
    "simulate_day",
    "terminal_profiles",
]
