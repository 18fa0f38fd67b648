import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.harness.reading.probe_sets import labelled
from experiments.harness.tasks.arith import TaskSpec, completion_words, generate_problems
from experiments.harness.training.model import build_tokenizer
from probes.activations import ROLES, ActivationCache, unique_prefix_masks
from probes.features import FeatureStats, feature_stats, spearman_rows, weighted_auroc

# Planted latents of the synthetic cache (the fake SAE's codes are relu(activations)).
RESULT, NOISE, TRACE, PRO_DELIB, PRO_DIRECT, DEAD, K_UP, K_DOWN = range(8)


class IdentitySAE:
    """Anything with ``encode`` and ``W_dec`` [F, D] works; codes = relu(x) make planted stats exact."""

    def __init__(self, d: int):
        self.W_dec = torch.eye(d)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


def _cache_from(seqs, acts_ND: np.ndarray) -> ActivationCache:
    """An in-memory ActivationCache with rows in sequence order (as ``write_cache`` lays them out)."""
    cols = {
        "seq": np.concatenate([np.full(len(s.token_ids), i) for i, s in enumerate(seqs)]),
        "pos": np.concatenate([np.arange(len(s.token_ids)) for s in seqs]),
        "token": np.concatenate([s.token_ids for s in seqs]),
        "role": np.concatenate([[ROLES.index(r) for r in s.roles] for s in seqs]),
        "step": np.concatenate([s.steps for s in seqs]),
    }
    cols = {k: v.astype(np.int32) for k, v in cols.items()}
    fields = ("pid", "k", "band", "mode", "source", "correct", "split", "n_prompt")
    return ActivationCache(
        path=Path("synthetic"),
        hook_name="blocks.0.hook_resid_post",
        model_dir="",
        fingerprint="",
        acts_ND=acts_ND,
        seq_N=cols["seq"],
        pos_N=cols["pos"],
        token_N=cols["token"],
        role_N=cols["role"],
        step_N=cols["step"],
        unique_N=np.concatenate(unique_prefix_masks(seqs)),
        sequences=tuple({f: getattr(s, f) for f in fields} for s in seqs),
    )


def _planted(seqs, words, problem_delib) -> np.ndarray:
    """Activations that depend only on each row's prefix, one planted latent per column."""
    rows = []
    for s, w, pro in zip(seqs, words, problem_delib):
        for t in range(len(s.token_ids)):
            row = np.zeros(8)
            in_trace = s.mode == "deliberate" and t >= s.n_prompt
            if in_trace and s.roles[t] == "operand":
                row[RESULT] = int(w[t + 1]) + 1.0  # the next token: the running result r_i
            row[TRACE] = float(in_trace)
            row[K_UP], row[K_DOWN] = (s.k, 10.0 - s.k) if in_trace else (0.0, 0.0)
            if t == s.n_prompt - 1:  # the decision row, shared by all sequences of the problem
                row[PRO_DELIB], row[PRO_DIRECT] = (1.0, 0.0) if pro else (0.0, 1.0)
            rows.append(row)
    acts_ND = np.asarray(rows, dtype=np.float32)
    acts_ND[:, NOISE] = np.random.default_rng(0).uniform(0.0, 1.0, len(acts_ND))
    return acts_ND


@pytest.fixture(scope="module")
def synthetic():
    """Problems k = 1..4: canonical deliberate + direct, and one 'sample' whose mode alternates by problem."""
    spec, tok = TaskSpec(), build_tokenizer(TaskSpec())
    seqs, words, pro = [], [], []
    for k in range(1, 5):
        for j, pr in enumerate(generate_problems(7, k, 12, spec)):
            split = "eval" if j % 4 == 3 else "train"
            sampled = "deliberate" if j % 2 == 0 else "direct"
            for mode, source in (("deliberate", "canonical"), ("direct", "canonical"), (sampled, "sampled")):
                comp = completion_words(pr, mode)
                seqs.append(labelled(pr, tok, comp, mode=mode, source=source, correct=True, band="b", split=split))
                words.append(tok.convert_ids_to_tokens(list(seqs[-1].token_ids)))
                pro.append(sampled == "deliberate")
    acts_ND = _planted(seqs, words, pro)
    return _cache_from(seqs, acts_ND), acts_ND


def test_feature_stats__planted_latents(synthetic):
    cache, _ = synthetic
    st = feature_stats(IdentitySAE(8), cache)
    assert st.result_eta2_F[RESULT] == pytest.approx(1.0)
    assert st.result_eta2_F[NOISE] < 0.3
    assert math.isnan(st.result_eta2_F[TRACE])  # constant on the operand rows: nothing to explain
    assert st.choice_auc_F[PRO_DELIB] == 1.0 and st.choice_auc_F[PRO_DIRECT] == 0.0
    assert st.choice_auc_F[RESULT] == 0.5  # silent at every decision row: all ties
    assert st.k_corr_F[K_UP] == pytest.approx(1.0) and st.k_corr_F[K_DOWN] == pytest.approx(-1.0)
    assert st.fire_rate_F[DEAD] == 0 and math.isnan(st.k_corr_F[DEAD])
    assert st.trace_lift_F[TRACE] > 1e6  # silent outside deliberate completions
    # at the decision rows: 1 when the sample answered directly, 0.5 over all choosing samples
    assert st.direct_lift_F[PRO_DIRECT] == pytest.approx(2.0) and st.direct_lift_F[PRO_DELIB] < 1e-6
    assert st.decision_lift_F[PRO_DIRECT] > 2 and st.decision_lift_F[TRACE] < 1e-6
    assert (st.n_choice_deliberate, st.n_choice_direct) == (24, 24)
    assert st.k_values == (1, 2, 3, 4)
    np.testing.assert_allclose(st.role_share_FR[TRACE].sum(), 1.0)


def test_feature_stats__means_count_each_prefix_once(synthetic):
    cache, acts_ND = synthetic
    st = feature_stats(IdentitySAE(8), cache)
    unique = acts_ND[cache.unique_N]
    assert st.n_rows == cache.unique_N.sum() < cache.n_tokens
    np.testing.assert_allclose(st.mean_F, unique.mean(0), rtol=1e-6)
    np.testing.assert_allclose(st.fire_rate_F, (unique > 0).mean(0))
    operand = cache.role_N[cache.unique_N] == ROLES.index("operand")
    np.testing.assert_allclose(st.role_mean_FR[:, ROLES.index("operand")], unique[operand].mean(0), rtol=1e-6)


def test_feature_stats__chunking_and_row_selection(synthetic):
    cache, _ = synthetic
    whole, chunked = feature_stats(IdentitySAE(8), cache), feature_stats(IdentitySAE(8), cache, chunk_rows=7)
    for f in dataclasses.fields(FeatureStats):
        if f.name != "roles":
            np.testing.assert_allclose(getattr(chunked, f.name), getattr(whole, f.name), rtol=1e-9)
    evals = feature_stats(IdentitySAE(8), cache, rows=cache.rows("eval", unique=False))
    assert evals.n_rows == len(cache.rows("eval"))
    assert (evals.n_choice_deliberate, evals.n_choice_direct) == (0, 12)  # eval problems are odd: direct
    assert np.isnan(evals.choice_auc_F).all()
    with pytest.raises(ValueError, match="d_in"):
        feature_stats(IdentitySAE(5), cache)


def test_weighted_auroc__hand_computed_values():
    pos, neg = np.array([[1.0], [2.0], [2.0]]), np.array([[0.0], [2.0]])
    x, w_pos, w_neg = np.vstack([pos, neg]), np.r_[1, 1, 1, 0, 0], np.r_[0, 0, 0, 1, 1]
    # pairs (1,0) (1,2) (2,0) (2,2) (2,0) (2,2): 1 + 0 + 1 + .5 + 1 + .5 = 4 of 6
    assert weighted_auroc(x, w_pos, w_neg)[0] == pytest.approx(4 / 6)
    sep = np.array([[0.0, 3.0, 1.0], [1.0, 2.0, 1.0], [2.0, 1.0, 1.0], [3.0, 0.0, 1.0]])
    np.testing.assert_allclose(weighted_auroc(sep, np.r_[0, 0, 1, 1], np.r_[1, 1, 0, 0]), [1.0, 0.0, 0.5])
    assert np.isnan(weighted_auroc(sep, np.r_[0, 0, 0, 0], np.r_[1, 1, 0, 0])).all()


def test_weighted_auroc__weights_equal_repeated_points():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, size=(12, 5)).astype(float)  # many ties
    w_pos, w_neg = rng.integers(0, 3, 12), rng.integers(0, 3, 12)
    pos, neg = np.repeat(x, w_pos, axis=0), np.repeat(x, w_neg, axis=0)
    brute = ((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])).mean((0, 1))
    np.testing.assert_allclose(weighted_auroc(x, w_pos, w_neg, block=2), brute)


def test_spearman_rows__ties_and_degenerate_rows():
    k = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([[1, 2, 3, 4], [4, 3, 3, 1], [5, 5, 5, 5], [1, np.nan, 2, 3]], dtype=float)
    out = spearman_rows(k, y)
    assert out[0] == pytest.approx(1.0)
    assert out[1] == pytest.approx(np.corrcoef([1, 2, 3, 4], [4, 2.5, 2.5, 1])[0, 1])
    assert np.isnan(out[2:]).all()
    assert np.isnan(spearman_rows(k[:2], y[:1, :2])).all()
