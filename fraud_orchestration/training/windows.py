"""Chronological windows relative to a cutoff, and the handbook's test-day protocol.

Oldest first::

    [ train (fit + validation) ][ delay ][ test ]  cutoff

* Labels come only from the train window. Its last ``validation_days`` are held out for
  early stopping; the model is then refitted on the whole train window.
* The delay window models labels that arrive ``delay_days`` late: nothing in it is used
  for training. Its labels do become known day by day while the test days pass.
* Test day ``k`` drops the cards already known to be compromised: cards with a fraud on any
  day from the train start up to ``test_day - delay_days - 1`` (the handbook protocol).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta

import pandas as pd

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Window:
    start: date  # inclusive
    end: date  # exclusive

    @property
    def days(self) -> list[date]:
        return [self.start + i * DAY for i in range((self.end - self.start).days)]


@dataclass(frozen=True)
class TrainingWindows:
    train: Window
    validation: Window
    delay: Window
    test: Window

    @classmethod
    def ending_at(
        cls,
        cutoff: date,
        train_days: int = 7,
        delay_days: int = 7,
        test_days: int = 7,
        validation_days: int = 2,
    ) -> TrainingWindows:
        if not 0 < validation_days < train_days:
            raise ValueError("validation_days must be at least 1 and fewer than train_days")
        if min(delay_days, test_days) < 0 or test_days == 0:
            raise ValueError("delay_days must be >= 0 and test_days >= 1")
        test = Window(cutoff - test_days * DAY, cutoff)
        delay = Window(test.start - delay_days * DAY, test.start)
        train = Window(delay.start - train_days * DAY, delay.start)
        validation = Window(train.end - validation_days * DAY, train.end)
        return cls(train=train, validation=validation, delay=delay, test=test)

    @classmethod
    def handbook(cls, train_start: date, validation_days: int = 2) -> TrainingWindows:
        """The handbook's 7 / 7 / 7 split starting training on ``train_start``."""
        return cls.ending_at(train_start + 21 * DAY, validation_days=validation_days)

    @property
    def delay_days(self) -> int:
        return (self.delay.end - self.delay.start).days

    @property
    def days_needed(self) -> list[date]:
        return Window(self.train.start, self.test.end).days

    @classmethod
    def from_dict(cls, data: dict) -> TrainingWindows:
        return cls(
            **{
                name: Window(date.fromisoformat(bounds["start"]), date.fromisoformat(bounds["end"]))
                for name, bounds in data.items()
            }
        )

    def as_dict(self) -> dict:
        return {
            name: {k: v.isoformat() for k, v in asdict(window).items()}
            for name, window in (
                ("train", self.train),
                ("validation", self.validation),
                ("delay", self.delay),
                ("test", self.test),
            )
        }


def in_window(frame: pd.DataFrame, window: Window) -> pd.DataFrame:
    days = frame["tx_datetime"].dt.date
    return frame[(days >= window.start) & (days < window.end)]


def test_without_known_frauds(frame: pd.DataFrame, windows: TrainingWindows) -> pd.DataFrame:
    """The test window minus, on each test day, the cards already known to be compromised."""
    frame = frame.reset_index(drop=True)
    days = frame["tx_datetime"].dt.date
    frauds = frame.loc[frame["tx_fraud"] == 1, ["customer_id"]].assign(day=days)
    kept = []
    for test_day in windows.test.days:
        known_until = test_day - (windows.delay_days + 1) * DAY
        known = frauds.loc[
            (frauds["day"] >= windows.train.start) & (frauds["day"] <= known_until), "customer_id"
        ]
        todays = frame[days == test_day]
        kept.append(todays[~todays["customer_id"].isin(set(known))])
    return pd.concat(kept, ignore_index=True)
