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
    """Each bin's share of the finite ``values``, floored; bin ``i`` holds the values with
    exactly ``i`` edges at or below them (``searchsorted(edges, v, side="right")``).

    Counting ``values < edge`` once per edge gives the same integer counts as
    ``searchsorted`` + ``bincount``, much faster on a million rows: a binary search per value
    mispredicts its branches, a comparison pass streams (``python -m benchmarks.drift`` runs
    both). There are at most ``BINS - 1`` edges. Non-finite values are left out without
    copying: NaN and +inf are never below an edge, and -inf (below every edge) is subtracted.
    """
    finite = int(np.count_nonzero(np.isfinite(values)))
    negative_infinite = int(np.count_nonzero(values == -np.inf))
    below = [int(np.count_nonzero(values < edge)) - negative_infinite for edge in edges]
    counts = np.diff(np.array([0, *below, finite], dtype=np.int64))
    return np.maximum(counts / max(finite, 1), FLOOR)


def _finite(values: np.ndarray) -> np.ndarray:
    """``values`` without NaN and infinities; no copy in the usual all-finite case."""
    mask = np.isfinite(values)
    return values if mask.all() else values[mask]


def compare(name: str, reference: np.ndarray, current: np.ndarray, bins: int = BINS) -> Drift:
    """PSI and Jensen-Shannon distance of ``current`` against ``reference``'s quantile bins;
    non-finite values are ignored on both sides."""
    reference = _finite(reference)
    edges = bin_edges(reference, bins)
    expected, actual = _shares(reference, edges), _shares(current, edges)
    psi = float(np.sum((actual - expected) * np.log(actual / expected)))
    middle = (expected + actual) / 2
    divergence = 0.5 * np.sum(expected * np.log2(expected / middle)) + 0.5 * np.sum(
        actual * np.log2(actual / middle)
    )
    current = _finite(current)
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
    """Drift of every feature but the calendar ones. Columns are read as float64 views where
    the frame allows it (no per-feature copy)."""
    return [
        compare(
            name,
            reference[name].to_numpy(dtype=float, copy=False),
            current[name].to_numpy(dtype=float, copy=False),
        )
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
