"""The rule-based fallback: answers when no model is loaded, the model fails, or the time
budget would be missed.

A rule flags a transaction when one value crosses a threshold; the answer's score is the
highest score among the rules that fired (``base_score`` when none did), the decision is
``score >= threshold`` and the reasons are the names of the rules that fired. The defaults
mirror the two fraud patterns that need no model:

* ``high_amount``: ``tx_amount > 220`` -- the simulator's (and the handbook's) amount rule;
* ``risky_terminal``: the terminal's 7-day risk (share of its labelled transactions that were
  fraud, behind the 7-day label delay) ``>= 0.5`` over at least 2 labelled transactions.

Rules are configurable (:meth:`RuleSet.from_dict`, e.g. from a JSON file): any feature the
service computes may be used. A rule whose inputs are unavailable (the features could not be
computed in time) is skipped, so the amount rule always answers.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True)
class Condition:
    feature: str
    op: str
    value: float

    def holds(self, values: Mapping[str, float]) -> bool | None:
        """None when the feature is unavailable (the rule is then skipped)."""
        if self.feature not in values:
            return None
        observed = values[self.feature]
        if observed is None or not math.isfinite(observed):
            return None
        return OPERATORS[self.op](float(observed), self.value)


@dataclass(frozen=True)
class Rule:
    name: str
    score: float
    conditions: tuple[Condition, ...]
    """All must hold (AND)."""

    def fires(self, values: Mapping[str, float]) -> bool:
        return all(condition.holds(values) for condition in self.conditions)


@dataclass(frozen=True)
class RuleAnswer:
    score: float
    decision: bool
    reasons: list[str]


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = field(
        default_factory=lambda: (
            Rule("high_amount", 0.9, (Condition("tx_amount", ">", 220.0),)),
            Rule(
                "risky_terminal",
                0.8,
                (
                    Condition("terminal_id_risk_7day_window", ">=", 0.5),
                    Condition("terminal_id_nb_tx_7day_window", ">=", 2.0),
                ),
            ),
        )
    )
    threshold: float = 0.5
    base_score: float = 0.0

    def __post_init__(self) -> None:
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique, got {names}")
        if not 0.0 <= self.threshold <= 1.0 or not 0.0 <= self.base_score <= 1.0:
            raise ValueError("threshold and base_score must lie in [0, 1]")
        for rule in self.rules:
            if not 0.0 <= rule.score <= 1.0:
                raise ValueError(f"rule {rule.name!r}: score must lie in [0, 1]")
            if not rule.conditions:
                raise ValueError(f"rule {rule.name!r} has no conditions")
            for condition in rule.conditions:
                if condition.op not in OPERATORS:
                    raise ValueError(
                        f"rule {rule.name!r}: operator {condition.op!r} is not one of "
                        f"{sorted(OPERATORS)}"
                    )
                if not math.isfinite(condition.value):
                    raise ValueError(f"rule {rule.name!r}: thresholds must be finite")

    @property
    def features(self) -> set[str]:
        return {c.feature for rule in self.rules for c in rule.conditions}

    def check_features(self, available: Sequence[str]) -> None:
        """Refuse rules that read a feature the service never computes (a typo)."""
        unknown = sorted(self.features - set(available))
        if unknown:
            raise ValueError(f"fallback rules use unknown features {unknown}")

    def evaluate(self, values: Mapping[str, float]) -> RuleAnswer:
        fired = [rule for rule in self.rules if rule.fires(values)]
        score = max((rule.score for rule in fired), default=self.base_score)
        fired.sort(key=lambda rule: -rule.score)
        return RuleAnswer(
            score=score, decision=score >= self.threshold, reasons=[r.name for r in fired]
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "base_score": self.base_score,
            "rules": [
                {
                    "name": rule.name,
                    "score": rule.score,
                    "when": [asdict(condition) for condition in rule.conditions],
                }
                for rule in self.rules
            ],
        }

    @property
    def version(self) -> str:
        """A content hash: which rule set answered, as a model version says which model."""
        text = json.dumps(self.as_dict(), sort_keys=True)
        return "rules-" + hashlib.sha256(text.encode()).hexdigest()[:10]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleSet:
        """``{"threshold": 0.5, "base_score": 0.0, "rules": [{"name": ..., "score": ...,
        "when": [{"feature": ..., "op": ">", "value": ...}, ...]}, ...]}``."""
        unknown = set(data) - {"threshold", "base_score", "rules"}
        if unknown:
            raise ValueError(f"unknown rule-set keys {sorted(unknown)}")
        defaults = cls()
        rules = defaults.rules
        if "rules" in data:
            rules = tuple(
                Rule(
                    name=str(rule["name"]),
                    score=float(rule["score"]),
                    conditions=tuple(
                        Condition(str(c["feature"]), str(c["op"]), float(c["value"]))
                        for c in rule["when"]
                    ),
                )
                for rule in data["rules"]
            )
        return cls(
            rules=rules,
            threshold=float(data.get("threshold", defaults.threshold)),
            base_score=float(data.get("base_score", defaults.base_score)),
        )
