"""Feature-guided credit on planted dictionaries: a silent group pays nothing, a group firing on every token pays
failed rollouts the full weight and successes nothing, and a GRPO update logs what the bonus paid."""

import dataclasses
import functools

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from experiments import grpo
from experiments.harness import seeds
from experiments.harness.rundir import write_json
from experiments.harness.tasks.arith import Arithmetic, TaskSpec
from experiments.harness.training import rl
from experiments.harness.training.model import ModelSpec, build_model, build_tokenizer
from experiments.harness.training.rollout import Rollout
from experiments.harness.training.shaping import Shaper, ShapingSpec
from probes.layout import RunDirError
from probes.saes.train import SAESpec, build_sae, save_sae

D = 32
SILENT, ALWAYS, SOMETIMES = 0, 1, 2


@pytest.fixture
def planted(tmp_path):
    """A dictionary at block 1 whose latent 0 never fires, latent 1 fires on every token, latent 2 on some."""
    sae = build_sae(SAESpec(arch="batchtopk", d_sae=8, top_k=2.0), D, {"hook_name": "blocks.1.hook_resid_post"})
    save_sae(sae, tmp_path / "sae")
    w = load_file(tmp_path / "sae" / "sae_weights.safetensors")
    w["b_enc"][SILENT] = -1e6
    w["W_enc"][:, ALWAYS], w["b_enc"][ALWAYS] = 0.0, 1.0
    save_file(w, tmp_path / "sae" / "sae_weights.safetensors")
    return tmp_path / "sae"


def rollouts(task, tok):
    """Two groups of two: a right and a wrong completion of each problem."""
    vocab, rng = tok.get_vocab(), np.random.default_rng(0)
    out = []
    for k in (2, 3):
        pr = task.draw(rng, k)
        right = pr.completion_words("deliberate")
        wrong = [*right[:-2], str((int(right[-2]) + 1) % task.spec.p), right[-1]]
        group = []
        for words in (right, wrong):
            ids = [vocab[w] for w in words]
            group.append(Rollout(pr, tuple(vocab[w] for w in pr.prompt_words()), tuple(ids), pr.parse(words)))
        out.append(group)
    return out


def test_shaper__a_silent_group_pays_nothing_and_one_firing_everywhere_pays_failures_the_weight(planted):
    task, tok = Arithmetic(TaskSpec()), build_tokenizer(TaskSpec())
    model = build_model(ModelSpec(d_model=D, n_layers=3, n_heads=2, d_mlp=64), tok, seed=0).eval()
    groups = rollouts(task, tok)
    assert [[r.parsed.correct for r in g] for g in groups] == [[True, False], [True, False]]
    silent = Shaper(ShapingSpec(planted, (SILENT,), 0.1))
    bonus, activity = silent.bonus(model, groups)
    assert not bonus.any() and not activity.any()
    always = Shaper(ShapingSpec(planted, (SILENT, ALWAYS), 0.1))
    bonus, activity = always.bonus(model, groups)
    assert np.array_equal(activity, np.ones((2, 2))) and np.allclose(bonus, [[0.0, 0.1], [0.0, 0.1]])
    some = Shaper(ShapingSpec(planted, (SOMETIMES,), 0.1))
    r = groups[0][1]
    ids = torch.tensor([[*r.prompt_ids, *r.completion_ids]])
    with torch.no_grad():  # block 1's output is HF's hidden state 2 (block 2 is not the last: no final norm)
        codes = some.sae.encode(model(input_ids=ids, output_hidden_states=True).hidden_states[2])[0, :, SOMETIMES]
    expected = (codes[len(r.prompt_ids) :] > 0).float().mean().item()
    assert some.activity(model, [r])[0] == pytest.approx(expected) and 0 < expected < 1


def test_shaper__an_update_pays_the_bonus_into_the_advantages_and_logs_its_share(planted):
    task, tok = Arithmetic(TaskSpec()), build_tokenizer(TaskSpec())
    model = build_model(ModelSpec(d_model=D, n_layers=2, n_heads=2, d_mlp=64), tok, seed=0)
    ref = build_model(ModelSpec(d_model=D, n_layers=2, n_heads=2, d_mlp=64), tok, seed=0)
    pool = [task.draw(np.random.default_rng(1), k) for k in (6, 7, 8)]  # an untrained model fails them
    spec = rl.PolicySpec(prompts_per_step=2, group_size=2)
    shaper = Shaper(ShapingSpec(planted, (ALWAYS,), 0.1))
    gens = functools.partial(seeds.grpo_step, 0)
    (u,) = rl.train(model, ref, rl.optimizer(model, spec), tok, pool, spec, gens, range(1), shaper=shaper)
    failed = np.array([[not r.parsed.correct for r in g] for g in u.groups])
    assert np.allclose(u.bonus_NG, 0.1 * u.activity_NG * failed)
    m = rl.rollout_metrics(u)
    paid = u.rewards_NG.sum() + u.bonus_NG.sum()
    assert m["shaping/bonus_share"] == pytest.approx(u.bonus_NG.sum() / paid) and m["shaping/activity"] > 0
    (plain,) = rl.train(model, ref, rl.optimizer(model, spec), tok, pool, spec, gens, range(1))
    assert plain.bonus_NG is None and "shaping/bonus_share" not in rl.rollout_metrics(plain)


def test_grpo_shaping__needs_the_binary_reward_and_a_features_file_with_the_group(planted, tmp_path):
    with pytest.raises(ValueError, match="binary reward"):
        grpo.GRPOArgs(shaping=str(planted / "features.json"), reward="brier")
    with pytest.raises(ValueError, match="shaping_weight"):
        grpo.GRPOArgs(shaping_weight=1.0)
    args = grpo.GRPOArgs(shaping=str(planted / "features.json"))
    with pytest.raises(RunDirError, match="does not exist"):
        args.shaper()
    write_json(planted / "features.json", {"groups": {"deliberation": [], "shortcut": [ALWAYS]}})
    with pytest.raises(RunDirError, match="no latents in group 'deliberation'"):
        args.shaper()
    shaper = dataclasses.replace(args, shaping_group="shortcut").shaper()
    assert shaper.spec.latents == (ALWAYS,) and shaper.layer == 1 and torch.equal(shaper.latents, torch.tensor([1]))
