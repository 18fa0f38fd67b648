"""Two models in lockstep: one model runs with a hook that sees the other's activations on the same tokens.

``Lockstep`` is an HF-style causal LM for the KV-cached sampler: every forward first runs
the donor on the same tokens up to the hook (with its own cache, restarted whenever the main cache
starts empty) and captures its activations there into ``donor_acts``; the main model then runs
with the hook ``make_hook(donor_acts)`` builds. Patching a fine-tuned model's group back to
base values (``probes.causal.patch_hook``) asks how much of its gain the group carries;
steering or splicing with a change dictionary (``probes.saes.change``) needs the partner's
activations the same way. It also exposes ``hooks`` and ``original_model`` like a
TransformerBridge, so readers that take a bridge (``probes.attribution``) can run on the pair.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from experiments.harness.training.sampling import kv_cache
from probes.causal import HookFn


class _Captured(Exception):
    """Raised by the donor's hook once its activations are captured, to stop its forward there."""


class Lockstep(torch.nn.Module):
    """``main`` with ``make_hook(donor_acts)`` at ``hook``, the donor run first on the same tokens
    (no hook on main when ``make_hook`` is None: the donor's activations are only captured)."""

    def __init__(
        self, main_bridge, donor_bridge, hook: str, make_hook: Callable[[list[torch.Tensor]], HookFn] | None = None
    ):
        super().__init__()
        self.main, self.donor = main_bridge.original_model, donor_bridge.original_model
        self._bridges = (main_bridge, donor_bridge)
        # The hook points, resolved once: entering bridge.hooks() rebuilds the alias table (~7 ms), at every token.
        self._points = (main_bridge.hook_dict[hook], donor_bridge.hook_dict[hook])
        self.donor_acts: list[torch.Tensor] = []
        self._main_hook = make_hook(self.donor_acts) if make_hook else None
        self._donor_cache = None
        self.live: torch.Tensor | None = None
        """In a cached generation: the batch positions (as the generation started) of the rows still sampled (on the
        CPU); None otherwise."""

    @property
    def original_model(self) -> Lockstep:
        return self

    def hooks(self, *args, **kwargs):
        """The main bridge's hook context (what a reader adds runs on the main model)."""
        return self._bridges[0].hooks(*args, **kwargs)

    def live_rows(self, x_B: torch.Tensor) -> torch.Tensor:
        """The rows of a per-row tensor of the batch (as it started) that are still being sampled."""
        return x_B if self.live is None else x_B[self.live]

    def keep_rows(self, keep_B: torch.Tensor) -> None:
        """The sampler dropped finished rows from the batch: the donor's cache drops them too."""
        self._donor_cache.batch_select_indices(keep_B)
        self.live = self.live[keep_B.cpu()]

    def forward(
        self, input_ids, attention_mask=None, position_ids=None, use_cache=False, past_key_values=None, **kwargs
    ):
        if not use_cache:
            self.live = None
        elif past_key_values is None or past_key_values.get_seq_length() == 0:
            self._donor_cache = kv_cache()  # a new generation: the donor starts over too
            self.live = torch.arange(input_ids.shape[0])
        inputs = dict(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache
        )
        main_point, donor_point = self._points

        def capture(acts, hook):
            self.donor_acts[:] = [acts.detach()]
            raise _Captured  # nothing after the hook is needed: the donor's later layers never run

        try:
            with _hooked(donor_point, capture):
                self.donor(**inputs, past_key_values=self._donor_cache if use_cache else None)
        except _Captured:
            pass
        if self._main_hook is None:  # nothing added on main: a reader's own hooks there act alone
            return self.main(**inputs, past_key_values=past_key_values, **kwargs)
        with _hooked(main_point, self._main_hook):
            return self.main(**inputs, past_key_values=past_key_values, **kwargs)


@contextlib.contextmanager
def _hooked(point: torch.nn.Module, fn: HookFn):
    """``fn(acts, hook)`` on a TransformerLens hook point's output while the block runs, as ``HookPoint.add_hook``
    registers it, but removed by its own handle: hooks a reader added to the same point stay."""
    handle = point.register_forward_hook(lambda module, inputs, output: fn(output, module))
    try:
        yield
    finally:
        handle.remove()
