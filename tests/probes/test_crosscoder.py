"""Crosscoder: relative decoder norms, Latent Scaling, a planted fine-tune-only feature, sae_lens round trip,
the aligned token pairs crosscoders and difference SAEs read, and the in-memory batches they train on."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sae_lens import SAE, JumpReLUSAE

from probes.activations import ActivationCache
from probes.saes.change import kind_of
from probes.saes.crosscoder import (
    ARCHITECTURE,
    NU_MAX,
    TUNED_ONLY,
    aligned_rows,
    decoders,
    latent_scaling,
    paired,
    relative_norm,
    specificity,
)
from probes.saes.train import SAESpec, TrainSpec, build_crosscoder, load_sae, save_sae, tensor_batches, train_sae

D, N_SHARED = 16, 24


def toy_pairs(extra: bool, batch: int = 1024, seed: int = 1):
    """Two 'models' that share N_SHARED sparse feature directions with equal activations; with ``extra``
    the fine-tuned one also has a direction the base model lacks, firing on 10% of tokens."""
    g = torch.Generator().manual_seed(0)
    shared_FD = F.normalize(torch.randn(N_SHARED, D, generator=g), dim=-1)
    extra_D = F.normalize(torch.randn(D, generator=g), dim=-1)
    gen = torch.Generator().manual_seed(seed)

    def batches():
        while True:
            on_BF = torch.rand(batch, N_SHARED, generator=gen) < 3 / N_SHARED
            base_BD = (on_BF * (0.5 + torch.rand(batch, N_SHARED, generator=gen))) @ shared_FD
            fires_B = (torch.rand(batch, generator=gen) < 0.1) * (1 + torch.rand(batch, generator=gen))
            tuned_BD = base_BD + (fires_B[:, None] * extra_D if extra else 0)
            yield paired(base_BD, tuned_BD)

    return batches(), extra_D


def trained(extra: bool):
    torch.manual_seed(0)
    provider, extra_D = toy_pairs(extra)
    sae = build_crosscoder(SAESpec(d_sae=64, top_k=4.0), D, {"hook_name": "synthetic"})
    sae = train_sae(sae, provider, TrainSpec(n_samples=300_000, batch_size=1024, lr=3e-3, dead_window=20)).sae
    rows = next(toy_pairs(extra, batch=8192, seed=2)[0])
    return sae, rows, extra_D


def test_relative_norm__reads_which_model_a_latent_decodes_into():
    W_dec = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    assert relative_norm(W_dec).tolist() == [0.0, 0.5, 1.0, 0.5]
    assert decoders(W_dec).shape == (2, 4, 2)


def test_latent_scaling__recovers_a_planted_scale_beside_orthogonal_noise():
    g = torch.Generator().manual_seed(0)
    d_D = torch.randn(D, generator=g)
    codes_N = torch.rand(500, generator=g) * (torch.rand(500, generator=g) < 0.2)
    noise_ND = torch.randn(500, D, generator=g)
    noise_ND -= (noise_ND @ d_D)[:, None] * d_D / (d_D @ d_D)  # orthogonal to d
    assert latent_scaling(codes_N, 0.37 * codes_N[:, None] * d_D + noise_ND, d_D) == pytest.approx(0.37, abs=1e-5)
    assert math.isnan(latent_scaling(torch.zeros(500), noise_ND, d_D))


def test_crosscoder__finds_a_planted_fine_tune_only_feature_and_latent_scaling_confirms_it():
    sae, rows, extra_D = trained(extra=True)
    rel_F = relative_norm(sae.W_dec.detach())
    align_F = F.normalize(decoders(sae.W_dec.detach())[1], dim=-1) @ extra_D
    found = int(align_F.argmax())
    assert align_F[found] > 0.9 and rel_F[found] > TUNED_ONLY
    nu_err, nu_rec = specificity(sae, rows, [found])[found]
    assert abs(nu_err) < NU_MAX and abs(nu_rec) < NU_MAX
    live = [j for j in range(len(rel_F)) if j != found and (sae.encode(rows)[:, j] > 0).any()]
    assert (rel_F[live] < TUNED_ONLY).all()  # the shared features stay shared


def test_crosscoder__a_control_pair_with_no_added_feature_yields_no_confirmed_fine_tune_only_latent():
    sae, rows, _ = trained(extra=False)
    rel_F = relative_norm(sae.W_dec.detach())
    fires_F = (sae.encode(rows) > 0).any(0)
    candidates = [j for j in range(len(rel_F)) if rel_F[j] > TUNED_ONLY and fires_F[j]]
    confirmed = [j for j, nus in specificity(sae, rows, candidates).items() if all(abs(nu) < NU_MAX for nu in nus)]
    assert confirmed == []


def test_crosscoder__saves_and_loads_through_sae_lens_own_loader(tmp_path):
    torch.manual_seed(0)
    provider, _ = toy_pairs(extra=True, batch=256)
    sae = build_crosscoder(
        SAESpec(d_sae=32, top_k=4.0), D, {"hook_name": "blocks.1.hook_resid_post", "model_name": "base|tuned"}
    )
    sae = train_sae(sae, provider, TrainSpec(n_samples=256 * 40, batch_size=256, dead_window=5)).sae
    save_sae(sae, tmp_path / "xc")
    loaded = SAE.load_from_disk(tmp_path / "xc")
    assert isinstance(loaded, JumpReLUSAE) and load_sae(tmp_path / "xc").cfg.d_in == 2 * D
    assert loaded.cfg.metadata.training_architecture == ARCHITECTURE and kind_of(loaded) == "crosscoder"
    rows = next(toy_pairs(extra=True, batch=64, seed=3)[0])
    with torch.no_grad():
        _, hidden_NF = sae.encode_with_hidden_pre(rows)
        torch.testing.assert_close(
            loaded(rows), sae.decode(hidden_NF * (hidden_NF > sae.topk_threshold.float())), atol=1e-4, rtol=1e-4
        )
    torch.testing.assert_close(
        relative_norm(loaded.W_dec.detach()), relative_norm(sae.W_dec.detach()), atol=1e-5, rtol=1e-4
    )


def _cache(seqs: list[dict], acts: list[list[float]]):
    """An in-memory cache of the given sequences (each: pid, mode, source, tokens), one row per token."""
    seq_N = np.concatenate([[i] * len(s["tokens"]) for i, s in enumerate(seqs)])
    pos_N = np.concatenate([np.arange(len(s["tokens"])) for s in seqs])
    token_N = np.concatenate([s["tokens"] for s in seqs])
    zeros = np.zeros(len(seq_N), dtype=np.int32)
    meta = tuple({"split": "train", "source": s["source"], "pid": s["pid"], "mode": s["mode"]} for s in seqs)
    return ActivationCache(
        Path(seqs[0]["pid"]),
        "h",
        "",
        "",
        np.asarray(acts, np.float32),
        seq_N,
        pos_N,
        token_N,
        zeros,
        zeros,
        np.ones(len(seq_N), bool),
        meta,
    )


def test_aligned_rows__pairs_the_same_canonical_tokens_whatever_the_row_order_and_skips_own_samples():
    a = {"pid": "p", "mode": "deliberate", "source": "canonical", "tokens": [1, 2, 3]}
    b = {"pid": "p", "mode": "direct", "source": "canonical", "tokens": [1, 4]}
    own = {"pid": "p", "mode": "direct", "source": "sampled", "tokens": [1, 5, 6]}
    base = _cache([a, b, own], [[float(i), 0.0] for i in range(8)])
    tuned = _cache([own, b, a], [[100.0 + i, 1.0] for i in range(8)])  # rows: own 0-2, b 3-4, a 5-7
    rows_2R = aligned_rows(base, tuned)
    assert rows_2R.tolist() == [[0, 1, 2, 3, 4], [5, 6, 7, 3, 4]]
    wrong = _cache([{**a, "tokens": [1, 2, 9]}, b, own], [[0.0, 0.0]] * 8)
    with pytest.raises(ValueError, match="different tokens"):
        aligned_rows(base, wrong)
    assert np.array_equal(aligned_rows(base, base), np.stack([np.arange(5)] * 2))


def test_tensor_batches__endless_shuffled_batches_that_cover_every_row_each_epoch():
    rows = torch.arange(10.0)[:, None].repeat(1, 3)
    batches = tensor_batches(rows, 4, seed=0)
    first = torch.cat([next(batches) for _ in range(5)])  # 20 rows: two epochs
    assert first.shape == (20, 3) and sorted(first[:, 0].tolist()) == sorted(list(range(10)) * 2)
    assert first[:10, 0].tolist() != list(range(10))  # shuffled
    with pytest.raises(ValueError, match="no rows"):
        next(tensor_batches(rows[:0], 4, seed=0))
