from dataclasses import replace
from datetime import date, timedelta
from itertools import islice

import numpy as np
import pandas as pd
import pytest

from fraud_orchestration.schema import EVENT_FIELDS
from fraud_orchestration.simulator import (
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
from fraud_orchestration.simulator.generator import (
    AMOUNT_FRAUD_THRESHOLD,
    CUSTOMER_COMPROMISE_DAYS,
    TERMINAL_COMPROMISE_DAYS,
    TERMINAL_RADIUS,
)

SMALL = SimulationConfig(n_customers=400, n_terminals=800, n_days=35, seed=7)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate(SMALL)


def test_frame_has_exactly_the_event_fields_with_stable_dtypes(small):
    assert list(FRAME_DTYPES) == list(EVENT_FIELDS)
    assert list(small.columns) == list(EVENT_FIELDS)
    assert small.dtypes.astype(str).to_dict() == FRAME_DTYPES
    assert isinstance(small["tx_datetime"].iloc[0], pd.Timestamp)


def test_same_seed_same_frame_and_other_seed_another(small):
    pd.testing.assert_frame_equal(generate(SMALL), small)
    other = generate(replace(SMALL, seed=SMALL.seed + 1))
    assert not other.equals(small)


def test_a_day_is_the_same_alone_as_within_the_full_run(small):
    first_three = pd.concat([frame for _, frame in islice(iter_days(SMALL), 3)], ignore_index=True)
    pd.testing.assert_frame_equal(first_three, small.iloc[: len(first_three)])
    day = SMALL.days[20]
    alone = generate_day(SMALL, day)
    within = small[small["tx_datetime"].dt.date == day].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, within)


def test_ids_run_0_to_n_in_time_order_with_whole_seconds_inside_each_day(small):
    assert small["transaction_id"].tolist() == list(range(len(small)))
    assert small["tx_datetime"].is_monotonic_increasing
    assert (small["tx_datetime"].dt.floor("s") == small["tx_datetime"]).all()
    for day, frame in iter_days(replace(SMALL, n_days=3)):
        assert (frame["tx_datetime"].dt.date == day).all()


def test_customers_pay_at_terminals_within_the_radius(small):
    customers = customer_profiles(SMALL).set_index("customer_id")
    terminals = terminal_profiles(SMALL).set_index("terminal_id")
    home = customers.loc[small["customer_id"], ["x", "y"]].to_numpy()
    shop = terminals.loc[small["terminal_id"], ["x", "y"]].to_numpy()
    assert (np.hypot(*(home - shop).T) < TERMINAL_RADIUS).all()
    silent = customers.index[customers["n_terminals_in_reach"] == 0]
    assert not small["customer_id"].isin(silent).any()


def test_label_is_set_exactly_by_the_scenarios(small):
    assert (small["tx_fraud"] == (small["tx_fraud_scenario"] > 0)).all()
    assert set(small["tx_fraud_scenario"]) == {0, 1, 2, 3}
    genuine = small[small["tx_fraud_scenario"] == 0]
    assert (genuine["tx_amount"] <= AMOUNT_FRAUD_THRESHOLD).all()
    assert (genuine["tx_amount"] >= 0).all()
    by_amount = small[small["tx_fraud_scenario"] == 1]
    assert (by_amount["tx_amount"] > AMOUNT_FRAUD_THRESHOLD).all()


def test_compromised_terminals_turn_all_their_transactions_fraud(small):
    for day in SMALL.days:
        frame = small[small["tx_datetime"].dt.date == day]
        bad = frame["terminal_id"].isin(compromised_terminals(SMALL, day))
        assert frame.loc[bad, "tx_fraud_scenario"].isin([2, 3]).all()
        assert not (frame.loc[~bad, "tx_fraud_scenario"] == 2).any()
    first, last, after = (
        SMALL.days[i] for i in (0, TERMINAL_COMPROMISE_DAYS - 1, TERMINAL_COMPROMISE_DAYS)
    )
    assert len(compromised_terminals(SMALL, first)) == SMALL.compromised_terminals_per_day
    assert set(compromised_terminals(SMALL, first)) <= set(compromised_terminals(SMALL, last))
    assert (
        len(compromised_terminals(SMALL, after))
        <= SMALL.compromised_terminals_per_day * TERMINAL_COMPROMISE_DAYS
    )


def test_compromised_customers_lose_about_a_third_of_their_payments_at_five_times_the_amount(small):
    stolen_share, genuine_mean, stolen_mean = [], [], []
    for day in SMALL.days:
        frame = small[small["tx_datetime"].dt.date == day]
        victims = frame["customer_id"].isin(compromised_customers(SMALL, day))
        assert not (frame.loc[~victims, "tx_fraud_scenario"] == 3).any()
        theirs = frame[victims]
        stolen = theirs["tx_fraud_scenario"] == 3
        stolen_share.append(stolen.to_numpy())
        genuine_mean.append(theirs.loc[theirs["tx_fraud_scenario"] == 0, "tx_amount"].to_numpy())
        stolen_mean.append(theirs.loc[stolen, "tx_amount"].to_numpy())
    assert np.concatenate(stolen_share).mean() == pytest.approx(1 / 3, abs=0.06)
    ratio = np.concatenate(stolen_mean).mean() / np.concatenate(genuine_mean).mean()
    assert 3.5 < ratio < 6.5
    first = compromised_customers(SMALL, SMALL.days[0])
    assert set(first) <= set(compromised_customers(SMALL, SMALL.days[CUSTOMER_COMPROMISE_DAYS - 1]))


def test_default_run_has_realistic_volume_and_fraud_rate():
    config = SimulationConfig()
    frame = generate(config)
    per_customer_day = len(frame) / config.n_customers / config.n_days
    assert 1.7 < per_customer_day < 2.3
    assert 0.005 < frame["tx_fraud"].mean() < 0.01
    assert set(frame["tx_fraud_scenario"]) == {0, 1, 2, 3}


DRIFT_DAY = 10


@pytest.mark.parametrize(
    "knobs",
    [
        {"drift_amount_scale": 2.0},
        {"drift_volume_scale": 1.5},
        {"drift_new_pattern": True},
    ],
)
def test_drift_changes_nothing_before_its_day(small, knobs):
    drifted = generate(replace(SMALL, drift_from_day=DRIFT_DAY, **knobs))
    cut = pd.Timestamp(SMALL.days[DRIFT_DAY])
    pd.testing.assert_frame_equal(
        drifted[drifted["tx_datetime"] < cut], small[small["tx_datetime"] < cut]
    )
    assert (
        not drifted[drifted["tx_datetime"] >= cut]
        .reset_index(drop=True)
        .equals(small[small["tx_datetime"] >= cut].reset_index(drop=True))
    )
    assert drifted["transaction_id"].tolist() == list(range(len(drifted)))


def _after(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["tx_datetime"] >= pd.Timestamp(SMALL.days[DRIFT_DAY])]


def test_amount_drift_scales_the_genuine_amounts(small):
    drifted = _after(generate(replace(SMALL, drift_from_day=DRIFT_DAY, drift_amount_scale=2.0)))
    base = _after(small)
    assert len(drifted) == len(base)
    assert drifted["tx_amount"].median() == pytest.approx(2 * base["tx_amount"].median(), rel=0.02)
    assert drifted["tx_fraud"].mean() > base["tx_fraud"].mean()  # more cross the threshold


def test_volume_drift_scales_the_transaction_count(small):
    drifted = _after(generate(replace(SMALL, drift_from_day=DRIFT_DAY, drift_volume_scale=1.5)))
    assert len(drifted) / len(_after(small)) == pytest.approx(1.5, rel=0.05)


def test_new_pattern_adds_card_testing_bursts_from_the_drift_day(small):
    drifted = generate(replace(SMALL, drift_from_day=DRIFT_DAY, drift_new_pattern=True))
    testing = drifted[drifted["tx_fraud_scenario"] == 4]
    assert len(testing) > 0
    assert (testing["tx_datetime"] >= pd.Timestamp(SMALL.days[DRIFT_DAY])).all()
    assert (testing["tx_fraud"] == 1).all()
    assert (testing["tx_amount"] <= 5).all()
    bursts = testing.groupby([testing["tx_datetime"].dt.date, "customer_id"])
    assert (bursts.size() >= 5).all()
    assert (bursts["terminal_id"].nunique() == 1).all()
    assert (bursts["tx_datetime"].agg(lambda t: t.max() - t.min()) < pd.Timedelta(hours=1)).all()
    assert len(drifted) - len(testing) == len(small)


def test_invalid_configs_and_days_are_refused():
    with pytest.raises(ValueError):
        SimulationConfig(n_customers=0)
    with pytest.raises(ValueError):
        SimulationConfig(drift_from_day=-1)
    with pytest.raises(ValueError):
        SimulationConfig(drift_amount_scale=0)
    with pytest.raises(ValueError):
        generate_day(SMALL, date(2018, 3, 31))
    with pytest.raises(ValueError):
        generate_day(SMALL, SMALL.days[-1] + timedelta(days=1))


def test_an_empty_simulation_is_an_empty_frame_with_the_schema():
    frame = generate(replace(SMALL, n_days=0))
    assert frame.empty
    assert frame.dtypes.astype(str).to_dict() == FRAME_DTYPES
