"""A toy model with planted latents, shared by the attribution and gain-attribution tests.

Each token embeds to a fixed residual vector; the residual passes the hook and is unembedded.
The SAE is the identity dictionary (codes = relu(x)), so latent j is coordinate j. Latent SHORT
carries the 'direct answer' (token ANS at rows of token A), latent DELIB the 'trace step' (token
STEP at rows of token B); the other latents are noise the read-outs ignore.
"""

import contextlib
import types

import numpy as np
import torch
from transformer_lens.hook_points import HookPoint

from probes.attribution import Readouts

V, D = 8, 8
A, B, ANS, STEP, OTHER = 1, 2, 5, 6, 7
NUMBERS = [ANS, STEP, OTHER]
SHORT, DELIB = 0, 1


class IdentitySAE(torch.nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.W_dec = torch.nn.Parameter(torch.eye(d), requires_grad=False)
        self.cfg = types.SimpleNamespace(d_sae=d)

    def encode(self, x):
        return torch.relu(x)


class ToyBridge:
    """What the probes use of a TransformerBridge: ``hooks``, ``hook_dict`` and ``original_model``; its one hook
    point, named "hook", is a TransformerLens HookPoint on the residual."""

    def __init__(self, seed: int = 0, short: float = 2.0, delib: float = 2.0):
        g = torch.Generator().manual_seed(seed)
        self.embed = 0.1 * torch.rand(V, D, generator=g)
        self.embed[A, SHORT], self.embed[B, DELIB] = short, delib
        self.unembed = 0.05 * torch.randn(D, V, generator=g)
        self.unembed[SHORT, ANS], self.unembed[DELIB, STEP] = 3.0, 3.0
        self.hook_dict = {"hook": HookPoint()}
        self.original_model = self._forward

    @contextlib.contextmanager
    def hooks(self, fwd_hooks):
        point = self.hook_dict["hook"]
        for _, fn in fwd_hooks:
            point.add_hook(fn)
        try:
            yield self
        finally:
            point.remove_hooks()

    def _forward(self, input_ids, attention_mask=None, **_):
        x = self.hook_dict["hook"](self.embed[input_ids])
        return types.SimpleNamespace(logits=x @ self.unembed)


def readouts(token: int, target: int, den: list[int], n: int = 6) -> Readouts:
    seqs = tuple((0, token, 3) for _ in range(n))
    num_RV, den_RV = np.zeros((n, V), bool), np.zeros((n, V), bool)
    num_RV[:, target], den_RV[:, den] = True, True
    return Readouts(seqs, np.arange(n), np.ones(n, dtype=np.int64), num_RV, den_RV, np.full(n, target))
