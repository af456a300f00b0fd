"""Drift and label-based performance against the deployed model's training reference."""
