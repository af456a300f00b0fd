"""Tests of the model lifecycle: metrics, trainer, registry."""
