"""Feature and prediction drift: PSI on the reference's quantile bins, plus Jensen-Shannon.

PSI (population stability index) is the credit-scoring industry's drift measure; its usual
reading (Siddiqi, *Credit Risk Scorecards*, 2006) is < 0.10 stable, 0.10-0.25 a moderate
shift worth a look, > 0.25 a significant shift. Those are this module's WARN and ERROR
defaults. PSI grows without bound when a bin empties, so every bin gets a small floor, and
PSI also grows with noise on small samples; the Jensen-Shannon distance (base 2, within
[0, 1]) on the same bins is reported beside it as a bounded measure that does not explode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CALENDAR_FEATURES = frozenset({"tx_during_weekend"})
"""Constant within a daily partition by construction: a Saturday is 100 % weekend whatever
the reference says, so day-against-reference drift would always alarm on it."""

BINS = 10
FLOOR = 1e-4
WARN_PSI = 0.10
ERROR_PSI = 0.25


@dataclass(frozen=True)
class Drift:
    name: str
    psi: float
    js_distance: float
    reference_mean: float
    current_mean: float


def bin_edges(reference: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Inner edges at the reference's quantiles (ties collapse, so flags get two bins)."""
    quantiles = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(quantiles)


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return np.maximum(counts / max(len(values), 1), FLOOR)


def compare(name: str, reference: np.ndarray, current: np.ndarray, bins: int = BINS) -> Drift:
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    edges = bin_edges(reference, bins)
    expected, actual = _shares(reference, edges), _shares(current, edges)
    psi = float(np.sum((actual - expected) * np.log(actual / expected)))
    middle = (expected + actual) / 2
    divergence = 0.5 * np.sum(expected * np.log2(expected / middle)) + 0.5 * np.sum(
        actual * np.log2(actual / middle)
    )
    return Drift(
        name=name,
        psi=round(psi, 6),
        js_distance=round(float(np.sqrt(max(divergence, 0.0))), 6),
        reference_mean=float(np.mean(reference)) if len(reference) else float("nan"),
        current_mean=float(np.mean(current)) if len(current) else float("nan"),
    )


def feature_drift(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str]
) -> list[Drift]:
    return [
        compare(name, reference[name].to_numpy(float), current[name].to_numpy(float))
        for name in features
        if name not in CALENDAR_FEATURES
    ]


def severity(psi: float, warn: float = WARN_PSI, error: float = ERROR_PSI) -> str:
    return "ERROR" if psi > error else "WARN" if psi > warn else "OK"


def drift_png(drifts: list[Drift], prediction: Drift, warn: float, error: float) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [*drifts, prediction]
    figure, axis = plt.subplots(figsize=(7, 0.28 * len(rows) + 1.2), dpi=80)
    colors = [
        {"OK": "#16a34a", "WARN": "#f59e0b", "ERROR": "#dc2626"}[severity(d.psi, warn, error)]
        for d in rows
    ]
    axis.barh([d.name for d in rows], [d.psi for d in rows], color=colors)
    axis.axvline(warn, color="#f59e0b", linestyle="--", linewidth=1)
    axis.axvline(error, color="#dc2626", linestyle="--", linewidth=1)
    axis.invert_yaxis()
    axis.set(xlabel="PSI against the training reference", title="Feature and prediction drift")
    axis.tick_params(axis="y", labelsize=7)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
