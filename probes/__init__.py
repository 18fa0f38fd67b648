"""Instruments that read models: activations, SAEs, features, causal checks, diffs, statistics.

Probes never train the model under study; the only training they do is fitting
dictionaries (SAEs) on a model's activations, which is a way of reading it. They never
import ``experiments`` (tests/test_architecture.py enforces it), and importing them
changes nothing: Hugging Face offline mode is switched on by ``probes.models.offline_mode``,
called at entry points (the CLI, ``probes.notebook.open_run``, the tests).
"""
