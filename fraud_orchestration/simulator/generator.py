"""A deterministic card-transaction simulator modelled on the Fraud Detection Handbook's.

Customers live at a point of a 100 x 100 square and pay at the terminals within
``TERMINAL_RADIUS`` of home; each has a mean amount (std = mean / 2) and a mean number of
transactions a day (uniform 0..4, so about 2 on average). Times cluster around midday.

Fraud, applied in this order so that a later scenario overrides an earlier one's label as in
the handbook:

1. any amount above ``AMOUNT_FRAUD_THRESHOLD``;
2. each day ``compromised_terminals_per_day`` random terminals are compromised for
   ``TERMINAL_COMPROMISE_DAYS`` days (that day included): all their transactions are fraud;
3. each day ``compromised_customers_per_day`` random customers are compromised for
   ``CUSTOMER_COMPROMISE_DAYS`` days: a third of their transactions (each with probability
   1/3, where the handbook samples exactly a third of the window) are multiplied by 5 and are
   fraud;
4. only with ``drift_new_pattern``, from ``drift_from_day`` on: card testing, bursts of tiny
   amounts at one terminal on a few cards a day, added as extra transactions.

Every random draw comes from a generator seeded by ``(seed, stream, day)``, so any day can be
produced on its own and is identical to the same day produced within a full run; the drift
knobs change nothing before ``drift_from_day``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd

AREA_SIZE = 100.0
TERMINAL_RADIUS = 5.0
SECONDS_PER_DAY = 86_400
TIME_MEAN_SECONDS = SECONDS_PER_DAY / 2
TIME_STD_SECONDS = 20_000.0

AMOUNT_FRAUD_THRESHOLD = 220.0
TERMINAL_COMPROMISE_DAYS = 28
CUSTOMER_COMPROMISE_DAYS = 14
COMPROMISED_CUSTOMER_FRAUD_SHARE = 1 / 3
COMPROMISED_CUSTOMER_AMOUNT_FACTOR = 5.0

CARD_TESTING_CARDS_PER_DAY = 3
CARD_TESTING_BURST_SIZE = (5, 15)
CARD_TESTING_GAP_SECONDS = (5, 60)
CARD_TESTING_AMOUNT = (0.5, 5.0)

SCENARIO_GENUINE = 0
SCENARIO_AMOUNT = 1
SCENARIO_TERMINAL = 2
SCENARIO_CUSTOMER = 3
SCENARIO_CARD_TESTING = 4

FRAME_DTYPES: dict[str, str] = {
    "transaction_id": "int64",
    "tx_datetime": "datetime64[ns]",
    "customer_id": "int64",
    "terminal_id": "int64",
    "tx_amount": "float64",
    "tx_fraud": "int64",
    "tx_fraud_scenario": "int64",
}
"""Column dtypes of a simulated (or handbook) frame, in ``EVENT_FIELDS`` order."""

# Independent random streams; each generator is seeded by (seed, stream[, day]).
_PROFILES, _ARRIVALS, _DETAILS, _TERMINAL_COMPROMISE, _CUSTOMER_COMPROMISE, _CARD_TESTING = range(6)


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Days are indexed from 0 at ``start_date``.

    From day ``drift_from_day`` on (never when it is None), genuine amounts are multiplied by
    ``drift_amount_scale`` (before the fraud rules, so more of them cross the amount threshold),
    each customer's daily rate by ``drift_volume_scale``, and ``drift_new_pattern`` adds
    card testing (scenario 4).
    """

    n_customers: int = 5000
    n_terminals: int = 10000
    start_date: date = date(2018, 4, 1)
    n_days: int = 60
    seed: int = 0
    compromised_terminals_per_day: int = 2
    compromised_customers_per_day: int = 3
    drift_from_day: int | None = None
    drift_amount_scale: float = 1.0
    drift_volume_scale: float = 1.0
    drift_new_pattern: bool = False

    def __post_init__(self) -> None:
        if self.n_customers < 1 or self.n_terminals < 1 or self.n_days < 0:
            raise ValueError("need at least one customer and one terminal, and n_days >= 0")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")
        if self.drift_from_day is not None and self.drift_from_day < 0:
            raise ValueError("drift_from_day is a 0-based day index")
        if self.drift_amount_scale <= 0 or self.drift_volume_scale <= 0:
            raise ValueError("drift scales must be positive")

    @property
    def days(self) -> list[date]:
        return [self.start_date + timedelta(days=i) for i in range(self.n_days)]

    def day_index(self, day: date) -> int:
        index = (day - self.start_date).days
        if not 0 <= index < self.n_days:
            raise ValueError(f"{day} is not one of the {self.n_days} days from {self.start_date}")
        return index

    def drifting(self, day_index: int) -> bool:
        return self.drift_from_day is not None and day_index >= self.drift_from_day


@dataclass(frozen=True)
class _Profiles:
    customer_xy: np.ndarray
    mean_amount: np.ndarray
    mean_tx_per_day: np.ndarray
    terminal_xy: np.ndarray
    # Customer c reaches the terminals reachable[reach_start[c] : reach_start[c] + reach_count[c]].
    reach_start: np.ndarray
    reach_count: np.ndarray
    reachable: np.ndarray


def _rng(seed: int, stream: int, day: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, stream, day])


@lru_cache(maxsize=4)
def _profiles(n_customers: int, n_terminals: int, seed: int) -> _Profiles:
    rng = _rng(seed, _PROFILES)
    customer_xy = rng.uniform(0, AREA_SIZE, size=(n_customers, 2))
    mean_amount = rng.uniform(5, 100, size=n_customers)
    mean_tx_per_day = rng.uniform(0, 4, size=n_customers)
    terminal_xy = rng.uniform(0, AREA_SIZE, size=(n_terminals, 2))
    reach = _terminals_within(customer_xy, terminal_xy, TERMINAL_RADIUS)
    return _Profiles(customer_xy, mean_amount, mean_tx_per_day, terminal_xy, *reach)


def _terminals_within(
    points: np.ndarray, terminals: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each point, (start, count) of its slice of the returned terminal ids within ``radius``.

    Both sets are bucketed into square cells of side ``radius``; the points of a cell are
    compared only with the terminals of the 3 x 3 cells around it.
    """
    cells = int(np.ceil(AREA_SIZE / radius))

    def cell_of(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        col_row = np.clip((xy // radius).astype(np.int64), 0, cells - 1)
        return col_row[:, 0], col_row[:, 1]

    terminal_col, terminal_row = cell_of(terminals)
    terminal_order = np.argsort(terminal_col * cells + terminal_row, kind="stable")
    cell_start = np.searchsorted(
        (terminal_col * cells + terminal_row)[terminal_order], np.arange(cells * cells + 1)
    )
    point_col, point_row = cell_of(points)
    point_key = point_col * cells + point_row
    point_order = np.argsort(point_key, kind="stable")
    bounds = np.searchsorted(point_key[point_order], np.arange(cells * cells + 1))

    start = np.zeros(len(points), dtype=np.int64)
    count = np.zeros(len(points), dtype=np.int64)
    found, total = [], 0
    for key in np.flatnonzero(np.diff(bounds)):
        col, row = divmod(int(key), cells)
        lo_row, hi_row = max(row - 1, 0), min(row + 1, cells - 1)
        candidates = terminal_order[
            np.concatenate(
                [
                    np.arange(cell_start[c * cells + lo_row], cell_start[c * cells + hi_row + 1])
                    for c in range(max(col - 1, 0), min(col + 2, cells))
                ]
            )
        ]
        block = point_order[bounds[key] : bounds[key + 1]]
        dx = points[block, 0, None] - terminals[None, candidates, 0]
        dy = points[block, 1, None] - terminals[None, candidates, 1]
        rows, cols = np.nonzero(dx * dx + dy * dy < radius * radius)
        per_point = np.bincount(rows, minlength=len(block))
        start[block] = total + np.cumsum(per_point) - per_point
        count[block] = per_point
        found.append(candidates[cols].astype(np.int32))
        total += len(cols)
    reachable = np.concatenate(found) if found else np.empty(0, dtype=np.int32)
    return start, count, reachable


def customer_profiles(config: SimulationConfig) -> pd.DataFrame:
    """The simulated customers: home, spending habits and how many terminals are in reach."""
    profiles = _profiles(config.n_customers, config.n_terminals, config.seed)
    return pd.DataFrame(
        {
            "customer_id": np.arange(config.n_customers),
            "x": profiles.customer_xy[:, 0],
            "y": profiles.customer_xy[:, 1],
            "mean_amount": profiles.mean_amount,
            "std_amount": profiles.mean_amount / 2,
            "mean_tx_per_day": profiles.mean_tx_per_day,
            "n_terminals_in_reach": profiles.reach_count,
        }
    )


def terminal_profiles(config: SimulationConfig) -> pd.DataFrame:
    profiles = _profiles(config.n_customers, config.n_terminals, config.seed)
    return pd.DataFrame(
        {
            "terminal_id": np.arange(config.n_terminals),
            "x": profiles.terminal_xy[:, 0],
            "y": profiles.terminal_xy[:, 1],
        }
    )


def _arrivals(
    config: SimulationConfig, profiles: _Profiles, day: int
) -> tuple[np.ndarray, np.ndarray]:
    """Who pays on ``day`` and at which second; customers with no terminal in reach never pay."""
    rng = _rng(config.seed, _ARRIVALS, day)
    rate = profiles.mean_tx_per_day
    if config.drifting(day):
        rate = rate * config.drift_volume_scale
    counts = rng.poisson(rate)
    counts[profiles.reach_count == 0] = 0
    customers = np.repeat(np.arange(config.n_customers), counts)
    seconds = rng.normal(TIME_MEAN_SECONDS, TIME_STD_SECONDS, size=len(customers))
    # Like the handbook, times falling outside the day are dropped rather than redrawn.
    inside = (seconds >= 0) & (seconds < SECONDS_PER_DAY)
    return customers[inside], np.floor(seconds[inside]).astype(np.int64)


def _compromised(config: SimulationConfig, stream: int, day: int) -> np.ndarray:
    """Ids compromised on ``day``: the union of the draws of the last days still in effect."""
    if stream == _TERMINAL_COMPROMISE:
        duration, population = TERMINAL_COMPROMISE_DAYS, config.n_terminals
        per_day = config.compromised_terminals_per_day
    else:
        duration, population = CUSTOMER_COMPROMISE_DAYS, config.n_customers
        per_day = config.compromised_customers_per_day
    first = max(0, day - duration + 1)
    draws = [
        _daily_draw(config.seed, stream, d, population, per_day) for d in range(first, day + 1)
    ]
    return np.unique(np.concatenate(draws))


def compromised_terminals(config: SimulationConfig, day: date) -> np.ndarray:
    """Terminals all of whose transactions on ``day`` are fraud (scenario 2), ascending."""
    return _compromised(config, _TERMINAL_COMPROMISE, config.day_index(day))


def compromised_customers(config: SimulationConfig, day: date) -> np.ndarray:
    """Customers a third of whose transactions on ``day`` are fraud (scenario 3), ascending."""
    return _compromised(config, _CUSTOMER_COMPROMISE, config.day_index(day))


@lru_cache(maxsize=64)
def _daily_draw(seed: int, stream: int, day: int, population: int, size: int) -> np.ndarray:
    """The ids newly compromised on ``day`` (cached: consecutive days share most of them)."""
    draw = _rng(seed, stream, day).choice(population, size=min(size, population), replace=False)
    draw.flags.writeable = False
    return draw


def _card_testing(config: SimulationConfig, day: int) -> dict[str, np.ndarray]:
    """Scenario 4: a few cards each make a burst of tiny payments minutes apart at one terminal."""
    if not (config.drift_new_pattern and config.drifting(day)):
        return {}
    rng = _rng(config.seed, _CARD_TESTING, day)
    cards = rng.choice(
        config.n_customers, size=min(CARD_TESTING_CARDS_PER_DAY, config.n_customers), replace=False
    )
    sizes = rng.integers(CARD_TESTING_BURST_SIZE[0], CARD_TESTING_BURST_SIZE[1] + 1, len(cards))
    longest = CARD_TESTING_BURST_SIZE[1] * CARD_TESTING_GAP_SECONDS[1]
    starts = rng.integers(0, SECONDS_PER_DAY - longest, size=len(cards))
    gaps = rng.integers(CARD_TESTING_GAP_SECONDS[0], CARD_TESTING_GAP_SECONDS[1] + 1, sizes.sum())
    burst = np.repeat(np.arange(len(cards)), sizes)
    elapsed = np.cumsum(gaps)
    elapsed -= elapsed[np.cumsum(sizes) - sizes][burst]  # each burst starts at its start second
    n = int(sizes.sum())
    return {
        "customer_id": cards[burst],
        "seconds": starts[burst] + elapsed,
        "terminal_id": rng.integers(0, config.n_terminals, size=len(cards))[burst],
        "tx_amount": np.round(rng.uniform(*CARD_TESTING_AMOUNT, size=n), 2),
        "tx_fraud_scenario": np.full(n, SCENARIO_CARD_TESTING),
    }


def _day_size(config: SimulationConfig, profiles: _Profiles, day: int) -> int:
    customers, _ = _arrivals(config, profiles, day)
    return len(customers) + len(_card_testing(config, day).get("customer_id", ()))


def _day_frame(
    config: SimulationConfig, profiles: _Profiles, day: int, first_id: int
) -> pd.DataFrame:
    customers, seconds = _arrivals(config, profiles, day)
    n = len(customers)
    rng = _rng(config.seed, _DETAILS, day)

    mean = profiles.mean_amount[customers]
    amounts = rng.normal(mean, mean / 2)
    negative = amounts < 0
    amounts[negative] = rng.uniform(0, 2 * mean[negative])
    if config.drifting(day):
        amounts *= config.drift_amount_scale
    amounts = np.round(amounts, 2)

    pick = profiles.reach_start[customers] + (
        rng.random(n) * profiles.reach_count[customers]
    ).astype(np.int64)
    terminals = profiles.reachable[pick].astype(np.int64)

    scenario = np.zeros(n, dtype=np.int64)
    scenario[amounts > AMOUNT_FRAUD_THRESHOLD] = SCENARIO_AMOUNT
    at_bad_terminal = np.isin(terminals, _compromised(config, _TERMINAL_COMPROMISE, day))
    scenario[at_bad_terminal] = SCENARIO_TERMINAL
    on_bad_card = np.isin(customers, _compromised(config, _CUSTOMER_COMPROMISE, day))
    stolen = on_bad_card & (rng.random(n) < COMPROMISED_CUSTOMER_FRAUD_SHARE)
    amounts[stolen] = np.round(amounts[stolen] * COMPROMISED_CUSTOMER_AMOUNT_FACTOR, 2)
    scenario[stolen] = SCENARIO_CUSTOMER

    testing = _card_testing(config, day)
    if testing:
        customers = np.concatenate([customers, testing["customer_id"]])
        seconds = np.concatenate([seconds, testing["seconds"]])
        terminals = np.concatenate([terminals, testing["terminal_id"]])
        amounts = np.concatenate([amounts, testing["tx_amount"]])
        scenario = np.concatenate([scenario, testing["tx_fraud_scenario"]])

    order = np.argsort(seconds, kind="stable")
    midnight = np.datetime64(config.start_date, "s") + np.timedelta64(day * SECONDS_PER_DAY, "s")
    return pd.DataFrame(
        {
            "transaction_id": np.arange(first_id, first_id + len(order), dtype=np.int64),
            "tx_datetime": (midnight + seconds[order]).astype("datetime64[ns]"),
            "customer_id": customers[order],
            "terminal_id": terminals[order],
            "tx_amount": amounts[order],
            "tx_fraud": (scenario[order] > 0).astype(np.int64),
            "tx_fraud_scenario": scenario[order],
        }
    )


def iter_days(config: SimulationConfig) -> Iterator[tuple[date, pd.DataFrame]]:
    """Yield ``(date, frame)`` for each simulated day, holding only one day in memory.

    Transaction ids run 0..N-1 in time order over the whole simulation.
    """
    profiles = _profiles(config.n_customers, config.n_terminals, config.seed)
    next_id = 0
    for index, day in enumerate(config.days):
        frame = _day_frame(config, profiles, index, next_id)
        next_id += len(frame)
        yield day, frame


def generate_day(config: SimulationConfig, day: date) -> pd.DataFrame:
    """One day on its own, identical to that day in :func:`iter_days`.

    The first transaction id needs the number of transactions of every earlier day; those
    counts come from the cheap arrival draws alone, so this costs far less than a full run.
    """
    index = config.day_index(day)
    profiles = _profiles(config.n_customers, config.n_terminals, config.seed)
    first_id = sum(_day_size(config, profiles, earlier) for earlier in range(index))
    return _day_frame(config, profiles, index, first_id)


def generate(config: SimulationConfig) -> pd.DataFrame:
    """The whole simulation as one frame (use :func:`iter_days` for large runs)."""
    frames = [frame for _, frame in iter_days(config)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in FRAME_DTYPES.items()})
    return pd.concat(frames, ignore_index=True)
