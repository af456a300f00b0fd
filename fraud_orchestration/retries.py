"""Retry policies for the assets that touch external systems, and how to fail for good.

A transient failure -- an I/O error reading the landing zone or the lake, a throttled or
dropped AWS call, a lost connection to the scoring endpoint -- is retried by Dagster with
exponential backoff and jitter (the run's executor honours it; the in-process executor of
``materialize`` and ``execute_in_process`` does too). A permanent one -- a missing input, a
refused model, a retraining held by a failed check -- raises ``Failure(...,
allow_retries=False)``, so the run fails at once with its message instead of after the
backoff.
"""

from dagster import Backoff, Jitter, RetryPolicy

EXTERNAL_IO = RetryPolicy(
    max_retries=3, delay=2.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)
"""Reads and writes of the lake, the stores, the registry and the endpoint: waits of about
2, 4 and 8 seconds, enough to ride out a throttling burst or a restarting process."""

TRAINING = RetryPolicy(
    max_retries=1, delay=30.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)
"""Training is expensive (a SageMaker job in AWS mode): one retry after about 30 seconds.
A retry never registers a model twice: ``fraud_model`` finds the version it registered."""
