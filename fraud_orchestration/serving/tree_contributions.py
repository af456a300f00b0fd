"""XGBoost's approximate feature contributions (``approx_contribs``), compiled with Numba.

Saabas' path attribution: walking a transaction's path down each tree, every split credits
its feature with the change in the node's mean value (the cover-weighted mean of the leaves
below it). XGBoost computes the same in ``CalculateContributionsApprox``, but every call of
its C API first builds a DMatrix and parses its JSON arguments, about 0.2 ms (twice that in
the live service), while the walk itself takes microseconds for a few transactions.

The arithmetic is XGBoost's, in float32 and in its order: node means filled bottom-up as
``(mean(left) * hess(left) + mean(right) * hess(right)) / hess(node)``, each tree's credits
summed on their own and then added to the row's. A slot uses these only after they equalled
XGBoost's own bit for bit on a probe matrix straddling every split of the model
(:meth:`ApproxContributions.verify`); otherwise, and for what is not handled here
(categorical splits, several trees per round), reasons come from XGBoost.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import numpy as np
import xgboost as xgb
from numba import njit


class _Contributions(Protocol):
    def contributions(self, x: np.ndarray, approximate: bool) -> np.ndarray: ...


@njit(cache=True, nogil=True)
def _walk(
    x: np.ndarray,
    roots: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    condition: np.ndarray,
    default_left: np.ndarray,
    mean: np.ndarray,
) -> np.ndarray:
    """Per row of ``x`` (float32), each feature's summed credit over the trees at ``roots``."""
    rows, features = x.shape
    result = np.zeros((rows, features), dtype=np.float32)
    tree = np.zeros(features, dtype=np.float32)
    touched = np.empty(features, dtype=np.int64)  # the features a tree's path credits
    for r in range(rows):
        for root in roots:
            node = root
            node_value = mean[root]
            split = 0
            count = 0
            while left[node] != -1:
                split = feature[node]
                value = x[r, split]
                if value != value:  # missing: the split's default direction
                    node = left[node] if default_left[node] else right[node]
                else:
                    node = left[node] if value < condition[node] else right[node]
                new_value = mean[node]
                listed = False
                for k in range(count):
                    listed = listed or touched[k] == split
                if not listed:
                    touched[count] = split
                    count += 1
                tree[split] += new_value - node_value
                node_value = new_value
            tree[split] += condition[node] - node_value  # a leaf's condition is its value
            # XGBoost adds the tree's whole vector; its other entries are zeros.
            for k in range(count):
                result[r, touched[k]] += tree[touched[k]]
                tree[touched[k]] = 0
    return result


class ApproxContributions:
    """One booster's trees as flat arrays (children as global node numbers, -1 at leaves)."""

    def __init__(self, trees: list[dict[str, Any]], features: int) -> None:
        sizes = [len(tree["left_children"]) for tree in trees]
        offsets = np.cumsum([0, *sizes])
        self.features = features
        self.roots = offsets[:-1].astype(np.int64)

        def joined(key: str, dtype: Any) -> np.ndarray:
            return np.concatenate([np.asarray(tree[key], dtype=dtype) for tree in trees])

        self.left = joined("left_children", np.int64)
        self.right = joined("right_children", np.int64)
        for start, end in zip(offsets[:-1], offsets[1:], strict=True):
            split = self.left[start:end] != -1
            self.left[start:end][split] += start
            self.right[start:end][split] += start
        self.feature = joined("split_indices", np.int64)
        self.condition = joined("split_conditions", np.float32)
        self.default_left = joined("default_left", np.bool_)
        self.mean = _node_means(
            self.left, self.right, self.condition, joined("sum_hessian", np.float32), self.roots
        )

    @classmethod
    def from_booster(
        cls, booster: xgb.Booster, iteration_range: tuple[int, int]
    ) -> tuple[ApproxContributions | None, str | None]:
        """The trees of ``iteration_range``, or None and why they are not handled here."""
        model = json.loads(booster.save_raw("json"))["learner"]
        trees_model = model["gradient_booster"]["model"]
        per_round = len(trees_model["trees"]) / max(booster.num_boosted_rounds(), 1)
        if per_round != 1 or any(info != 0 for info in trees_model["tree_info"]):
            return None, "several trees per round"
        trees = trees_model["trees"][iteration_range[0] : iteration_range[1]]
        if any(any(kind != 0 for kind in tree["split_type"]) for tree in trees):
            return None, "categorical splits"
        if any(int(tree["tree_param"]["size_leaf_vector"]) > 1 for tree in trees):
            return None, "vector leaves"
        return cls(trees, booster.num_features()), None

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Each row's per-feature contributions to the log-odds (XGBoost's, less the bias)."""
        return _walk(
            x,
            self.roots,
            self.left,
            self.right,
            self.feature,
            self.condition,
            self.default_left,
            self.mean,
        )

    def verify(self, reference: _Contributions) -> str | None:
        """None when these contributions equal ``reference``'s (XGBoost's) bit for bit on
        :meth:`probe`; otherwise the first difference."""
        probe = self.probe()
        want = reference.contributions(probe, approximate=True)[:, : self.features]
        got = self.contributions(probe)
        differ = np.argwhere(got != want)
        if len(differ) == 0:
            return None
        row, column = differ[0]
        return (
            f"{len(differ)} contributions differ from XGBoost's, first row {row} feature "
            f"{column}: {got[row, column]!r} != {want[row, column]!r}"
        )

    def probe(self) -> np.ndarray:
        """Rows whose every value sits on, just below or just above one of its feature's
        split conditions, or is missing; in each column every such value at least once (in
        a shuffled order), so every split is taken both ways and every default direction."""
        rng = np.random.default_rng(0)
        split = self.left != -1
        columns = []
        for column in range(self.features):
            conditions = self.condition[split & (self.feature == column)]
            columns.append(
                np.concatenate(
                    [
                        conditions,
                        np.nextafter(conditions, np.float32(-np.inf)),
                        np.nextafter(conditions, np.float32(np.inf)),
                        [np.nan],
                    ]
                ).astype(np.float32)
            )
        rows = max(len(values) for values in columns)
        return np.column_stack(
            [rng.permutation(np.resize(values, rows)) for values in columns]
        ).astype(np.float32)


def _node_means(
    left: np.ndarray, right: np.ndarray, value: np.ndarray, hessian: np.ndarray, roots: np.ndarray
) -> np.ndarray:
    """Each node's mean leaf value, weighted by the leaves' hessian sums, in float32 as
    XGBoost's ``FillNodeMeanValues`` computes it (children before their parent)."""
    mean = np.empty(len(left), dtype=np.float32)
    for root in roots:
        pending = [(int(root), False)]
        while pending:
            node, children_done = pending.pop()
            if left[node] == -1:
                mean[node] = value[node]
            elif children_done:
                a, b = left[node], right[node]
                total = np.float32(mean[a] * hessian[a])
                total = np.float32(total + np.float32(mean[b] * hessian[b]))
                mean[node] = np.float32(total / hessian[node])
            else:
                pending += [(node, True), (int(right[node]), False), (int(left[node]), False)]
    return mean
