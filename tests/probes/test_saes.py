import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sae_lens import SAE, JumpReLUSAE
from sae_lens.saes.sae import TrainStepInput

from experiments.harness.tasks.arith import TaskSpec, completion_words, generate_problems, prompt_words
from experiments.harness.training.model import ModelSpec, build_model, build_tokenizer, save_model
from probes.activations import ActivationCache
from probes.models import load_bridge, load_hf
from probes.saes.eval import (
    constant_replacement,
    next_token_loss,
    reconstruction_stats,
    recovered,
    sae_replacement,
    spliced,
)
from probes.saes.train import (
    ARCHS,
    SAESpec,
    TrainSpec,
    build_sae,
    data_provider,
    load_sae,
    pair_batches,
    save_sae,
    token_batches,
    train_sae,
)
from probes.saes.tsae import ARCHITECTURE, COEFFICIENT, TemporalMatryoshkaTrainingSAE, info_nce, split_pairs

HOOK = "blocks.0.hook_resid_post"


def _cache(
    acts_ND: np.ndarray, seq_N: np.ndarray, pos_N: np.ndarray, role_N: np.ndarray | None = None
) -> ActivationCache:
    """An in-memory cache (one 'train' sequence per seq id)."""
    n = len(acts_ND)
    zeros = np.zeros(n, dtype=np.int32)
    return ActivationCache(
        path=Path("synthetic"),
        hook_name=HOOK,
        model_dir="",
        fingerprint="",
        acts_ND=acts_ND.astype(np.float32),
        seq_N=seq_N,
        pos_N=pos_N,
        token_N=zeros,
        role_N=zeros if role_N is None else role_N,
        step_N=zeros,
        unique_N=np.ones(n, dtype=bool),
        sequences=tuple({"split": "train"} for _ in range(seq_N.max() + 1)),
    )


def _random_batches(d: int, batch_size: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield torch.randn(batch_size, d, generator=gen)


# --- T-SAE loss -------------------------------------------------------------------------


def test_info_nce__aligned_adjacent_codes_score_lower_than_shuffled():
    gen = torch.Generator().manual_seed(0)
    prev_BH = torch.relu(torch.randn(256, 32, generator=gen))
    next_BH = torch.relu(prev_BH + 0.3 * torch.randn(256, 32, generator=gen))  # t's code close to t-1's
    shuffled_BH = next_BH[torch.randperm(256, generator=gen)]
    aligned, shuffled = info_nce(prev_BH, next_BH, 0.1), info_nce(prev_BH, shuffled_BH, 0.1)
    assert aligned < 0.5 * shuffled and shuffled > math.log(256) - 1  # shuffled is near chance
    assert torch.isclose(info_nce(prev_BH, next_BH, 0.1), info_nce(next_BH, prev_BH, 0.1))  # symmetric


def test_info_nce__all_zero_codes_are_chance_and_pass_no_gradient():
    prev_BH = torch.zeros(8, 4, requires_grad=True)
    loss = info_nce(prev_BH, torch.rand(8, 4), 0.1)
    loss.backward()
    assert torch.isclose(loss, torch.tensor(math.log(8))) and prev_BH.grad.abs().sum() == 0


def test_tsae__training_step_adds_the_weighted_contrastive_loss():
    spec = SAESpec(arch="temporal", d_sae=40, top_k=4.0, contrastive_coef=0.5)
    sae = build_sae(spec, 16, {"hook_name": HOOK})
    assert isinstance(sae, TemporalMatryoshkaTrainingSAE) and sae.cfg.architecture() == ARCHITECTURE
    assert sae.cfg.matryoshka_widths == [8, 40] and sae.get_coefficients()[COEFFICIENT].value == 0.5
    x_2BD = torch.randn(2 * 32, 16)
    step = TrainStepInput(x_2BD, {COEFFICIENT: 0.25}, None, 0, False)  # the trainer's (warmed-up) value wins
    out = sae.training_forward_pass(step)
    prev_BH, next_BH = split_pairs(out.feature_acts[:, :8])
    expected = 0.25 * info_nce(prev_BH, next_BH, spec.contrastive_temperature)
    assert torch.isclose(out.losses["temporal_contrastive_loss"], expected)
    assert torch.isclose(out.loss, sum(out.losses.values()))
    with pytest.raises(ValueError, match="pairs"):
        sae.training_forward_pass(TrainStepInput(torch.randn(7, 16), {}, None, 0, False))


# --- data providers ---------------------------------------------------------------------


def test_token_batches__one_epoch_covers_every_row_once_across_chunks():
    seq_N = np.repeat(np.arange(10), 6)
    acts_ND = np.arange(60, dtype=np.float32)[:, None].repeat(3, 1)  # row i holds the value i
    cache = _cache(acts_ND, seq_N, np.tile(np.arange(6), 10))
    rows = np.arange(0, 60, 2)  # 30 rows; chunks of 7 do not divide them, batches of 5 do
    it = token_batches(cache, rows, 5, seed=0, chunk_rows=7)
    seen = torch.cat([next(it) for _ in range(6)])[:, 0].long().tolist()
    assert sorted(seen) == rows.tolist()


def test_pair_batches__hold_adjacent_tokens_of_one_sequence():
    seq_N, pos_N = np.repeat(np.arange(20), 5), np.tile(np.arange(5), 20)
    acts_ND = np.stack([seq_N, pos_N, np.zeros(100)], axis=1)
    cache = _cache(acts_ND, seq_N, pos_N)
    rows = cache.pair_rows("train")
    assert len(rows) == 80 and (pos_N[rows] > 0).all()
    batch_2BD = next(pair_batches(cache, rows, 32, seed=0, chunk_rows=64))
    prev_BD, next_BD = split_pairs(batch_2BD)
    assert (prev_BD[:, 0] == next_BD[:, 0]).all() and (prev_BD[:, 1] + 1 == next_BD[:, 1]).all()


# --- training, save/load -----------------------------------------------------------------


def test_train_sae__recovers_planted_sparse_directions():
    d, n_true = 32, 48
    dirs_FD = F.normalize(torch.randn(n_true, d, generator=torch.Generator().manual_seed(0)), dim=-1)

    def planted(batch_size: int):
        gen = torch.Generator().manual_seed(1)
        while True:  # each direction fires independently, 3 per row on average
            on_BF = torch.rand(batch_size, n_true, generator=gen) < 3 / n_true
            yield (on_BF * (0.5 + torch.rand(batch_size, n_true, generator=gen))) @ dirs_FD

    torch.manual_seed(0)
    sae = build_sae(SAESpec(d_sae=96, top_k=4.0), d, {"hook_name": "synthetic"})
    result = train_sae(sae, planted(1024), TrainSpec(n_samples=400_000, batch_size=1024, lr=3e-3, dead_window=20))
    best_F = (dirs_FD @ F.normalize(result.sae.W_dec.detach(), dim=-1).T).max(-1).values
    assert (best_F >= 0.9).float().mean() >= 0.9, sorted(best_F.tolist())[:10]
    assert result.samples_per_s > 0 and result.n_samples >= 400_000


def test_build_and_train_sae__the_same_seed_gives_the_same_dictionary_whatever_ran_before():
    """sae_lens initialises and trains from torch's global generator; seeded here, a dictionary does not depend on
    what drew from it earlier in the process (a resumed study rebuilt different ones), and the caller's global
    state is left as it was."""

    def made(draws_before: int) -> torch.Tensor:
        torch.rand(draws_before)
        sae = build_sae(SAESpec(d_sae=16, top_k=2.0), 8, {"hook_name": "synthetic"}, seed=3)
        rows = (torch.randn(4096, 8, generator=torch.Generator().manual_seed(0)) for _ in iter(int, 1))
        return train_sae(sae, rows, TrainSpec(n_samples=8192, batch_size=1024, seed=3)).sae.W_dec.detach().clone()

    torch.manual_seed(123)
    first = made(0)
    state = torch.get_rng_state()
    second = made(17)
    assert torch.equal(first, second)
    torch.manual_seed(123)
    made(0)
    assert torch.equal(torch.get_rng_state(), state)  # the global stream moved only by the caller's own draw


@pytest.mark.parametrize("arch", ARCHS)
def test_save_load__sae_lens_own_loader_round_trip(arch, tmp_path):
    spec = SAESpec(arch=arch, d_sae=48, top_k=4.0)
    torch.manual_seed(0)
    sae = build_sae(spec, 16, {"hook_name": HOOK, "model_name": "/ckpt"})
    sae = train_sae(sae, _random_batches(16, 256), TrainSpec(n_samples=256 * 40, batch_size=256, dead_window=5)).sae
    save_sae(sae, tmp_path / "sae")
    assert {p.name for p in (tmp_path / "sae").iterdir()} == {"cfg.json", "sae_weights.safetensors"}
    keys = list(json.loads((tmp_path / "sae" / "cfg.json").read_text()))
    assert keys == sorted(keys)
    loaded = SAE.load_from_disk(tmp_path / "sae")
    assert isinstance(loaded, JumpReLUSAE) and load_sae(tmp_path / "sae").cfg.d_sae == 48
    meta = loaded.cfg.metadata
    levels = None if arch == "batchtopk" else spec.high_level_width  # the first Matryoshka level
    assert (meta.hook_name, meta.model_name, meta.high_level_width) == (HOOK, "/ckpt", levels)
    assert meta.training_architecture == sae.cfg.architecture()
    # the inference SAE is the trained one with its batch top-k replaced by the learned threshold
    x_ND = torch.randn(64, 16)
    with torch.no_grad():
        _, hidden_NF = sae.encode_with_hidden_pre(x_ND)
        codes_NF = hidden_NF * (hidden_NF > sae.topk_threshold.float())
        torch.testing.assert_close(loaded(x_ND), sae.decode(codes_NF), atol=1e-4, rtol=1e-4)


def test_tsae__contrastive_loss_makes_high_level_codes_smoother_than_plain_matryoshka():
    # Sequences share a slow, weak context direction; every token adds a fast, strong token
    # direction. Plain Matryoshka spends its first level on the frequent token directions;
    # the InfoNCE term pulls the high-level codes of adjacent tokens together.
    d, n_seq, length, n_ctx, n_tok = 24, 600, 12, 24, 8
    gen = np.random.default_rng(0)
    dirs = gen.normal(size=(n_ctx + n_tok, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    ctx_S, tok_SL = gen.integers(n_ctx, size=n_seq), gen.integers(n_tok, size=(n_seq, length))
    acts_ND = (0.7 * dirs[ctx_S][:, None, :] + dirs[n_ctx + tok_SL]).reshape(-1, d)
    cache = _cache(acts_ND, np.repeat(np.arange(n_seq), length), np.tile(np.arange(length), n_seq))
    train = TrainSpec(n_samples=200_000, batch_size=512, lr=3e-3, dead_window=20)
    smooth = {}
    for arch, coef in (("matryoshka", 0.0), ("temporal", 1.0)):
        torch.manual_seed(0)
        spec = SAESpec(arch=arch, d_sae=64, top_k=2.0, high_level_frac=0.25, contrastive_coef=coef)
        sae = train_sae(build_sae(spec, d, {"hook_name": HOOK}), data_provider(spec, cache, train), train).sae
        stats = reconstruction_stats(sae.eval(), cache, np.arange(len(acts_ND)), high_width=spec.high_level_width)
        assert stats.fve > 0.8
        smooth[arch] = stats.smooth_high
    assert smooth["temporal"] > smooth["matryoshka"] + 0.1, smooth


# --- evals ------------------------------------------------------------------------------


class LosslessSAE:
    """codes = [relu(x), relu(-x)], decode inverts exactly: FVE 1 and known L0/dead latents."""

    def __init__(self, d: int):
        self.cfg = type("Cfg", (), {"d_in": d, "d_sae": 2 * d})()
        self.device = torch.device("cpu")

    def encode(self, x):
        return torch.cat([torch.relu(x), torch.relu(-x)], dim=-1)

    def decode(self, codes):
        d = codes.shape[-1] // 2
        return codes[..., :d] - codes[..., d:]


def test_reconstruction_stats__exact_on_a_lossless_sae_and_chance_on_a_mean_one():
    gen = np.random.default_rng(0)
    seq_N, pos_N = np.repeat(np.arange(30), 4), np.tile(np.arange(4), 30)
    acts_ND = gen.normal(size=(120, 3))
    acts_ND[:, 0] = np.abs(acts_ND[:, 0]) + 0.1  # latent relu(-x0) never fires: dead
    acts_ND[pos_N > 1] = acts_ND[pos_N > 1][0]  # ... and positions 2, 3 repeat one row: smooth pairs
    role_N = (pos_N % 2).astype(np.int32)
    cache = _cache(acts_ND, seq_N, pos_N, role_N)
    stats = reconstruction_stats(LosslessSAE(3), cache, np.arange(120), high_width=3, chunk_rows=7)
    assert stats.fve == pytest.approx(1.0) and set(stats.fve_by_role) == {"special", "operand"}
    assert stats.l0 == pytest.approx(3.0) and stats.dead_frac == pytest.approx(1 / 6)
    assert stats.dense_frac == pytest.approx(5 / 6) and stats.n_tokens == 120  # all but the dead one fire often
    assert -1.0 <= stats.smooth_low <= 1.0 and stats.smooth_high > 0.2
    mean_sae = LosslessSAE(3)
    mean_sae.decode = lambda codes: torch.from_numpy(acts_ND.mean(0)).float().expand(len(codes), 3)
    assert reconstruction_stats(mean_sae, cache, np.arange(120), high_width=3).fve == pytest.approx(0.0, abs=1e-5)
    metrics = stats.metrics()
    assert metrics["sae/fve"] == stats.fve and "sae/fve_by_role/operand" in metrics and "sae/dead_frac" in metrics


def test_recovered__one_when_free_zero_when_as_bad_as_ablation():
    assert recovered(1.0, 1.0, 3.0) == 1.0 and recovered(1.0, 3.0, 3.0) == 0.0 and recovered(1.0, 2.0, 3.0) == 0.5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tok = build_tokenizer(TaskSpec())
    out = tmp_path_factory.mktemp("tiny") / "ckpt"
    save_model(build_model(ModelSpec(d_model=32, n_layers=2, n_heads=2, d_mlp=64), tok, seed=3), tok, out)
    return out, tok


def test_next_token_loss__equals_the_hf_loss_on_completion_tokens(tiny):
    model_dir, tok = tiny
    problems = generate_problems(0, 3, 5, TaskSpec()) + generate_problems(0, 1, 4, TaskSpec())
    prompts = [tok.convert_tokens_to_ids(prompt_words(pr)) for pr in problems]
    seqs = [p + tok.convert_tokens_to_ids(completion_words(pr, "deliberate")) for p, pr in zip(prompts, problems)]
    hf, total, count = load_hf(model_dir), 0.0, 0
    for p, s in zip(prompts, seqs):
        labels = torch.tensor([[-100] * len(p) + s[len(p) :]])
        n = len(s) - len(p)
        with torch.no_grad():
            total, count = total + float(hf(torch.tensor([s]), labels=labels).loss) * n, count + n
    got = next_token_loss(
        load_bridge(model_dir), seqs, [len(p) for p in prompts], pad_id=tok.pad_token_id, batch_size=3
    )
    assert got == pytest.approx(total / count, rel=1e-4)


def test_spliced__identity_is_clean_and_ablation_reaches_every_forward(tiny):
    model_dir, tok = tiny
    bridge = load_bridge(model_dir)
    ids = torch.tensor([tok.convert_tokens_to_ids(prompt_words(generate_problems(0, 2, 1, TaskSpec())[0]))])
    with torch.no_grad():
        clean = bridge(ids)
        with spliced(bridge, HOOK, lambda x: x):
            same = bridge.original_model(input_ids=ids).logits  # also fires through the wrapped HF model
        with spliced(bridge, HOOK, constant_replacement(torch.zeros(32))):
            zeroed = bridge(ids)
        with spliced(bridge, HOOK, None):
            unhooked = bridge(ids)
    torch.testing.assert_close(same, clean)
    torch.testing.assert_close(unhooked, clean)
    assert (zeroed - clean).abs().max() > 1e-3
    with pytest.raises(KeyError, match="blocks.7"), spliced(bridge, "blocks.7.hook_resid_post", lambda x: x):
        pass


def test_sae_replacement__is_the_sae_reconstruction():
    sae = LosslessSAE(4)
    x = torch.randn(2, 5, 4)
    torch.testing.assert_close(sae_replacement(sae)(x), x)
