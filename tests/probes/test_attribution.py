"""Attribution, group selection and the dissociation check on a toy model with planted latents (tests_toys)."""

import numpy as np
import pytest
import torch
from tests_toys import ANS, DELIB, NUMBERS, SHORT, STEP, A, B, D, IdentitySAE, ToyBridge, V, readouts

from probes.attribution import attribute, group_share, readout_values, select_groups
from probes.causal import Expectation, ablation_hook, check, matched_random_groups


def test_readout_values__log_probability_ratios_by_hand():
    logits = torch.log(torch.tensor([[[0.1, 0.2, 0.3, 0.4]]]))
    num = torch.tensor([[False, False, True, False]])
    val = readout_values(logits, torch.tensor([0]), torch.tensor([0]), num, torch.tensor([[False, True, True, False]]))
    assert val.item() == pytest.approx(np.log(0.3 / 0.5))
    assert readout_values(
        logits, torch.tensor([0]), torch.tensor([0]), num, torch.ones(1, 4, dtype=torch.bool)
    ).item() == pytest.approx(np.log(0.3))


def test_attribute__finds_the_planted_latent_and_matches_the_ablation_it_approximates():
    bridge, sae = ToyBridge(), IdentitySAE(D)
    ro = readouts(A, ANS, NUMBERS)
    att = attribute(bridge, sae, "hook", ro, pad_id=0, batch_size=4)  # two batches
    assert att.attr_SF.shape == (6, D) and att.codes_RF.shape == (6, D) and att.value_R.shape == (6,)
    assert att.attr_SF.sum(0).argmax() == SHORT
    # First order: for the toy (linear up to the softmax) the attribution tracks the exact ablation effect.
    clean = att.value_R
    with bridge.hooks([("hook", ablation_hook(sae, [SHORT]))]):
        logits = bridge.original_model(torch.tensor(ro.sequences)).logits
    ablated = readout_values(
        logits,
        torch.as_tensor(ro.seq_R),
        torch.as_tensor(ro.pos_R),
        torch.as_tensor(ro.num_RV),
        torch.as_tensor(ro.den_RV),
    ).numpy()
    assert np.sign(att.attr_SF[:, SHORT]).tolist() == np.sign(clean - ablated).tolist()
    assert att.codes_RF[:, SHORT] == pytest.approx(np.full(6, 2.0))


def test_select_groups__each_readout_gets_its_planted_latent_and_groups_are_disjoint():
    bridge, sae = ToyBridge(), IdentitySAE(D)
    attr = {
        "shortcut": attribute(bridge, sae, "hook", readouts(A, ANS, NUMBERS), 0).attr_SF.mean(0),
        "deliberation": attribute(bridge, sae, "hook", readouts(B, STEP, list(range(V))), 0).attr_SF.mean(0),
    }
    groups = select_groups(attr, np.ones(D, bool), share=0.5, max_group=4)
    assert groups == {"shortcut": [SHORT], "deliberation": [DELIB]}
    assert group_share(attr["shortcut"], [SHORT]) > 0.9
    dead = np.ones(D, bool)
    dead[SHORT] = False
    assert SHORT not in select_groups(attr, dead, 0.5, 4)["shortcut"]  # dead latents never join
    everything = select_groups({"x": np.array([3.0, 2.0, 1.0, -5.0])}, np.ones(4, bool), share=0.99, max_group=2)
    assert everything == {"x": [0, 1]}  # capped at max_group; negative attribution never joins


def _behaviour(bridge, sae, group):
    """Per problem: is the direct answer (rows of A) right, is the trace step (rows of B) right."""
    hooks = [("hook", ablation_hook(sae, group))] if group else []
    ids = torch.tensor([(0, A, 3), (0, B, 3)] * 10)
    with bridge.hooks(hooks):
        logits = bridge.original_model(ids).logits[:, 1]
    best = torch.as_tensor(NUMBERS)[logits[:, NUMBERS].argmax(-1)]
    return {
        "direct_correct": (best[0::2] == ANS).double().numpy(),
        "deliberate_correct": (best[1::2] == STEP).double().numpy(),
    }


def test_check__planted_shortcut_group_passes_its_dissociation_and_a_random_group_fails():
    bridge, sae = ToyBridge(), IdentitySAE(D)
    clean = _behaviour(bridge, sae, [])
    assert clean["direct_correct"].all() and clean["deliberate_correct"].all()
    fire, mass = np.r_[0.5, 0.5, np.full(D - 2, 0.4)], np.r_[1.0, 1.0, np.full(D - 2, 0.8)]
    randoms = matched_random_groups([SHORT], list(range(D)), fire, mass, n=5, seed=0)
    rand_beh = [_behaviour(bridge, sae, g) for g in randoms]
    expect = Expectation("direct_correct", -1.0, off_target="deliberate_correct")
    planted = check(expect, clean, _behaviour(bridge, sae, [SHORT]), rand_beh)
    assert planted.passed and planted.effect.mean == -1.0 and planted.percentile == 1.0
    assert planted.dissociation.mean == 1.0 and planted.effects["deliberate_correct"] == 0.0
    wrong = check(
        Expectation("deliberate_correct", -1.0, off_target="direct_correct"),
        clean,
        _behaviour(bridge, sae, [SHORT]),
        rand_beh,
    )
    assert not wrong.passed  # the shortcut group is not a deliberation group
    control = check(expect, clean, _behaviour(bridge, sae, randoms[0]), rand_beh[1:])
    assert not control.passed and control.effect.mean == 0.0


def test_check__either_direction_and_needs_to_beat_every_random_group():
    clean = {"p": np.full(10, 0.5)}
    up = check(Expectation("p", 0.0), clean, {"p": np.full(10, 0.8)}, [{"p": np.full(10, 0.45)}])
    down = check(Expectation("p", 0.0), clean, {"p": np.full(10, 0.1)}, [{"p": np.full(10, 0.45)}])
    assert up.passed and down.passed
    beaten = check(Expectation("p", 0.0), clean, {"p": np.full(10, 0.8)}, [{"p": np.full(10, 0.0)}])
    assert not beaten.passed and beaten.percentile == 0.0  # a random group moved it further, the other way


def test_matched_random_groups__stand_ins_fire_like_the_group_and_never_overlap_it():
    rng = np.random.default_rng(0)
    fire, mass = rng.random(200), rng.random(200)
    group = np.argsort(fire)[-10:].tolist()  # the ten most frequent latents
    groups = matched_random_groups(group, list(range(200)), fire, mass, n=20, seed=1)
    assert len(groups) == 20 and all(len(g) == 10 and not set(g) & set(group) for g in groups)
    assert len({tuple(g) for g in groups}) > 1
    drawn = np.concatenate(groups)
    assert fire[drawn].mean() > 0.85 > fire.mean() + 0.3  # matched: far above a uniform draw's mean
    assert groups == matched_random_groups(group, list(range(200)), fire, mass, n=20, seed=1)


def test_check__under_no_group_specific_effect_passes_at_most_one_in_21():
    """Null: the group and its 20 matched random groups all hurt the behaviour by the same amount on
    average (every ablation of that size does). A pass then needs the group to beat all 20 by chance:
    probability 1/21 = 0.048 under exchangeability, the CI and dissociation rules only lower it."""
    rng = np.random.default_rng(0)
    trials, n = 400, 60
    clean = {"direct_correct": np.ones(n), "deliberate_correct": np.ones(n)}
    expect = Expectation("direct_correct", -1.0, off_target="deliberate_correct")

    def ablated():
        return {
            "direct_correct": (rng.random(n) > 0.3).astype(float),
            "deliberate_correct": (rng.random(n) > 0.2).astype(float),
        }

    bound = 1 / 21 + 2.5 * np.sqrt((1 / 21) * (20 / 21) / trials)
    for rule in (expect, Expectation("direct_correct", -1.0)):  # with and without the dissociation
        passes = sum(
            check(rule, clean, ablated(), [ablated() for _ in range(20)], seed=t).passed for t in range(trials)
        )
        assert passes / trials <= bound  # measured: 0.025 with the dissociation, 0.0525 without
