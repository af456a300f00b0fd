"""Fraud-detection metrics as the Fraud Detection Handbook defines them.

AUC ROC and average precision are threshold-free transaction-level metrics taken straight
from scikit-learn. Card Precision@k is the operational one: investigators can check about
``k`` cards a day, so what matters is how many of the ``k`` most suspicious *cards* (not
transactions) on a day are really compromised.

Prediction frames use the project's lower-case column names: ``customer_id`` (the card),
``tx_fraud`` (the label), a score column, and either a ``day`` column or ``tx_datetime``
(whose calendar date is the day).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from fraud_orchestration.schema import LABEL


def auc_roc(y: np.ndarray | pd.Series, score: np.ndarray | pd.Series) -> float:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``)."""
    return float(roc_auc_score(y, score))


def average_precision(y: np.ndarray | pd.Series, score: np.ndarray | pd.Series) -> float:
    """Average precision, the step-wise area under the PR curve (``average_precision_score``)."""
    return float(average_precision_score(y, score))


def _days(df: pd.DataFrame) -> pd.Series:
    if "day" in df.columns:
        return df["day"]
    if "tx_datetime" in df.columns:
        return pd.to_datetime(df["tx_datetime"]).dt.normalize()
    raise ValueError("need a 'day' or a 'tx_datetime' column to split predictions by day")


def card_precision_at_k(
    df: pd.DataFrame,
    k: int = 100,
    score_col: str = "score",
    drop_known_frauds: bool = True,
) -> float:
    """Mean over the days of the share of real frauds among the ``k`` most suspicious cards.

    For each day, in date order: each card gets the maximum score and the maximum label of
    its transactions that day; cards are ranked by score descending, ties broken by
    ``customer_id`` ascending so the result never depends on row order; the day's value is
    (frauds among the top ``k``) / ``k`` -- divided by ``k`` even when fewer than ``k``
    cards were seen, as in the handbook.

    With ``drop_known_frauds`` (the handbook's ``remove_detected_compromised_cards``), a
    card that was *detected* on an earlier day of ``df`` -- in that day's top ``k`` and
    fraudulent -- is left out of the later days: investigators have already blocked it, so
    ranking it again would count the same catch twice. Only detected cards are dropped, not
    every card with an earlier fraud, exactly as the handbook's code does; that is what
    makes the published figures comparable.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if df.empty:
        raise ValueError("no predictions to evaluate")
    if df[score_col].isna().any():
        raise ValueError(f"column {score_col!r} has missing scores")
    per_card = (
        pd.DataFrame(
            {
                "day": _days(df).to_numpy(),
                "customer_id": df["customer_id"].to_numpy(),
                "score": df[score_col].to_numpy(),
                "fraud": df[LABEL].to_numpy(),
            }
        )
        .groupby(["day", "customer_id"], sort=False)
        .max()
        .reset_index()
    )
    detected: set[int] = set()
    daily = []
    for day in sorted(per_card["day"].unique()):
        cards = per_card[per_card["day"] == day]
        if drop_known_frauds:
            cards = cards[~cards["customer_id"].isin(detected)]
        top = cards.sort_values(
            ["score", "customer_id"], ascending=[False, True], kind="stable"
        ).head(k)
        hits = top.loc[top["fraud"] == 1, "customer_id"]
        daily.append(len(hits) / k)
        detected.update(hits.tolist())
    return float(np.mean(daily))


def evaluate(df: pd.DataFrame, score_col: str = "score") -> dict[str, float]:
    """The handbook's three headline metrics for one prediction frame."""
    return {
        "auc_roc": auc_roc(df[LABEL], df[score_col]),
        "avg_precision": average_precision(df[LABEL], df[score_col]),
        "card_precision_at_100": card_precision_at_k(df, k=100, score_col=score_col),
    }


def precision_recall_points(
    y: np.ndarray | pd.Series, score: np.ndarray | pd.Series
) -> pd.DataFrame:
    """Points of the precision-recall curve, for plotting.

    One row per distinct threshold, recall decreasing, plus scikit-learn's closing point
    (recall 0, precision 1) whose ``threshold`` is NaN.
    """
    precision, recall, thresholds = precision_recall_curve(y, score)
    return pd.DataFrame(
        {
            "threshold": np.append(thresholds, np.nan),
            "precision": precision,
            "recall": recall,
        }
    )
