import pytest
import torch

from probes.causal import ablation_hook, group_contribution, judge, random_groups
from probes.saes.train import SAESpec, build_sae


@pytest.fixture(scope="module")
def sae():
    torch.manual_seed(0)
    return build_sae(SAESpec("batchtopk", 32, 4.0), d_in=8, metadata={"hook_name": "blocks.0.hook_resid_post"})


def test_ablation_hook__removes_exactly_the_group_contribution(sae):
    x = torch.randn(3, 5, 8)
    group = [1, 4, 9]
    out = ablation_hook(sae, group)(x.clone(), None)
    codes = sae.encode(x)
    expected = x - codes[..., group] @ sae.W_dec[group]
    torch.testing.assert_close(out, expected)
    silent = (codes[..., group] == 0).all(-1)  # tokens where the group does not fire are untouched
    assert silent.any() and torch.equal(out[silent], x[silent])


def test_ablation_hook__empty_group_is_identity_and_scale_amplifies(sae):
    x = torch.randn(2, 4, 8)
    torch.testing.assert_close(ablation_hook(sae, [])(x.clone(), None), x)
    contrib = group_contribution(sae, x, [2, 3])
    torch.testing.assert_close(ablation_hook(sae, [2, 3], scale=3.0)(x.clone(), None), x + 2 * contrib)


def test_random_groups__sizes_members_and_determinism():
    groups = random_groups(list(range(10, 30)), 5, 4, seed=0)
    assert len(groups) == 4 and all(len(g) == 5 and set(g) <= set(range(10, 30)) for g in groups)
    assert groups == random_groups(list(range(10, 30)), 5, 4, seed=0)
    assert len(random_groups([1, 2], 5, 1, seed=0)[0]) == 2


def test_judge__passes_only_beyond_every_random_group_in_the_expected_direction():
    clean = {"direct_acc": 0.9, "deliberate_acc": 0.8}
    r = judge("direct_acc", -1.0, clean, {"direct_acc": 0.5, "deliberate_acc": 0.8}, [{"direct_acc": 0.85, "deliberate_acc": 0.7}] * 2)
    assert r.passed and r.effect == pytest.approx(-0.4) and r.all_effects["deliberate_acc"] == pytest.approx(0.0)
    assert not judge("direct_acc", -1.0, clean, {"direct_acc": 0.5}, [{"direct_acc": 0.4}]).passed  # a random group hurts more
    assert not judge("direct_acc", -1.0, clean, {"direct_acc": 0.95}, [{"direct_acc": 0.99}]).passed  # wrong direction
