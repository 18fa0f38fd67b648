"""Two models in lockstep: one model runs with a latent group's codes taken from the other.

``Lockstep`` is an HF-style causal LM for the KV-cached sampler: every forward first runs
the donor on the same tokens (with its own cache, restarted whenever the main cache starts
empty) and captures its activations at the hook; the main model then runs with the group's
codes replaced by the donor's (``probes.causal.patch_hook``). Patching a fine-tuned model's
group back to base values asks how much of its gain the group carries; the reverse patch
asks how much of the gain the group alone brings to the base model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache

from probes.causal import patch_hook


class Lockstep(torch.nn.Module):
    """``main`` with ``group``'s codes at ``hook`` set to those of ``donor`` on the same tokens."""

    def __init__(self, main_bridge, donor_bridge, sae, hook: str, group: Sequence[int]):
        super().__init__()
        self.main, self.donor = main_bridge.original_model, donor_bridge.original_model
        self._bridges, self._sae, self._hook, self._group = (main_bridge, donor_bridge), sae, hook, list(group)
        self._donor_cache: DynamicCache | None = None

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False, past_key_values=None, **kwargs):
        if use_cache and (past_key_values is None or past_key_values.get_seq_length() == 0):
            self._donor_cache = DynamicCache()  # a new generation: the donor starts over too
        captured: list[torch.Tensor] = []
        inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache)
        main_bridge, donor_bridge = self._bridges
        with donor_bridge.hooks(fwd_hooks=[(self._hook, lambda acts, hook: captured.append(acts.detach()) or acts)]):
            self.donor(**inputs, past_key_values=self._donor_cache if use_cache else None)
        with main_bridge.hooks(fwd_hooks=[(self._hook, patch_hook(self._sae, self._group, captured))]):
            return self.main(**inputs, past_key_values=past_key_values, **kwargs)
