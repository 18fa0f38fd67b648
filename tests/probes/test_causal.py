import pytest
import torch

from probes.causal import ablation_hook, group_contribution
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
