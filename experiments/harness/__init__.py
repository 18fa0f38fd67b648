"""Shared machinery the stages are built from: task, models, sampling, training loops, run directory, CLI."""
