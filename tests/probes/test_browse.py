import dataclasses
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from probes.activations import ROLES, ActivationCache
from probes.browse import activity_by_role_and_k, coloured_html, contexts_html, top_activating_contexts
from probes.saes.change import paired_cache


class _IdentitySAE:
    """encode = relu(x): latent j is activation dimension j."""

    device = "cpu"
    cfg = types.SimpleNamespace(d_sae=2)

    def encode(self, x):
        return torch.relu(x)


def _cache() -> ActivationCache:
    # two sequences: seq 0 (k=1) has 3 tokens, seq 1 (k=2) has 2; rows deliberately out of position order
    acts = np.array([[0.0, 1], [5, 0], [1, 0], [2, 0], [-1, 0]], dtype=np.float32)
    return ActivationCache(
        path=Path("."),
        hook_name="h",
        model_dir="m",
        fingerprint="f",
        acts_ND=acts,
        seq_N=np.array([0, 0, 0, 1, 1]),
        pos_N=np.array([0, 2, 1, 0, 1]),
        token_N=np.array([10, 12, 11, 20, 21]),
        role_N=np.array([0, 4, 1, 0, 1]),
        step_N=np.zeros(5, int),
        unique_N=np.ones(5, bool),
        sequences=({"pid": "a", "k": 1}, {"pid": "b", "k": 2}),
    )


def test_top_activating_contexts__orders_by_code_and_returns_whole_sequence_in_position_order():
    ctx = top_activating_contexts(_IdentitySAE(), _cache(), latent=0, n=10)
    assert [c.value for c in ctx] == [5, 2, 1]  # the zero and negative rows never appear
    assert ctx[0].seq == 0 and ctx[0].pos == 2 and ctx[0].token_ids == (10, 11, 12)
    assert ctx[0].values == (0.0, 1.0, 5.0) and ctx[0].labels["pid"] == "a"


def test_top_activating_contexts__dead_latent_gives_nothing():
    cache = _cache()
    assert (
        top_activating_contexts(_IdentitySAE(), dataclasses.replace(cache, acts_ND=-np.abs(cache.acts_ND)), 0, 3) == []
    )


def test_activity_by_role_and_k__means_and_counts_per_cell():
    t = activity_by_role_and_k(_IdentitySAE(), _cache(), latent=0)
    assert t.ks == (1, 2) and t.roles == ROLES
    special, operand, answer = ROLES.index("special"), ROLES.index("operand"), ROLES.index("answer")
    assert t.mean_RK[answer, 0] == 5 and t.mean_RK[operand, 0] == 1 and t.mean_RK[special, 1] == 2
    assert t.n_RK.sum() == 5 and np.isnan(t.mean_RK[ROLES.index("intermediate"), 0])


def test_coloured_html__escapes_and_shades_by_value():
    out = coloured_html(["<bos>", "3"], [0.0, 2.0], vmax=2.0, mark=1)
    assert "&lt;bos&gt;" in out and "rgba(220,40,40,1.00)" in out and "rgba(220,40,40,0.00)" in out
    assert out.count("outline") == 1
    with pytest.raises(ValueError):
        coloured_html(["a"], [1.0, 2.0], vmax=1.0)


def test_contexts_html__one_line_per_context_with_the_top_token_outlined_after_the_prompt_bar():
    cache = _cache()
    cache = dataclasses.replace(
        cache,
        sequences=tuple(
            s | {"n_prompt": 1, "mode": "direct", "source": "canonical", "correct": True} for s in cache.sequences
        ),
    )
    ctx = top_activating_contexts(_IdentitySAE(), cache, latent=0, n=2)
    out = contexts_html(ctx, lambda ids: [f"w{i}" for i in ids])
    assert out.count("<div") == 2 and out.index("5.000") < out.index("2.000")
    first = out.split("</div>")[0]
    assert ">|</span>" in first and first.count("outline") == 1
    assert first.index(">w10<") < first.index(">|<") < first.index(">w11<")
    assert (
        'outline:2px solid #000;padding:1px 3px;margin:1px;font-family:monospace">w12<' in first
    )  # the top token, pos 2


def test_paired_cache__holds_the_change_dictionary_inputs_row_for_row_and_refuses_other_sequences():
    base = _cache()
    tuned = dataclasses.replace(base, acts_ND=base.acts_ND + np.array([1.0, 2.0], dtype=np.float32))
    diff = paired_cache("difference", base, tuned)
    assert np.allclose(diff.acts_ND, [[1.0, 2.0]] * 5) and diff.token_N is tuned.token_N
    cross = paired_cache("crosscoder", base, tuned)
    assert (
        cross.d_model == 4
        and np.allclose(cross.acts_ND[:, :2], base.acts_ND)
        and np.allclose(cross.acts_ND[:, 2:], tuned.acts_ND)
    )
    with pytest.raises(ValueError, match="row for row"):
        paired_cache("difference", base, dataclasses.replace(tuned, token_N=tuned.token_N[::-1]))
