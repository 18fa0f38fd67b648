"""Stratified latent means: every (role, k) stratum, and the decision rows, weigh the same."""

import types

import numpy as np
import torch

from probes.activations import ROLES
from probes.diff import rows_of, strata, stratified_means


class Identity:
    """An 'SAE' whose codes are the activations themselves (so means are checkable by hand)."""

    cfg = types.SimpleNamespace(d_sae=1)
    device = "cpu"

    def encode(self, x):
        return x


def cache(acts, roles, pos, n_prompt, k, source):
    """One sequence per row block: seq ids follow the given per-row sequence labels."""
    seq = np.arange(len(acts))
    return types.SimpleNamespace(
        acts_ND=np.asarray(acts, np.float32)[:, None],
        role_N=np.asarray(roles),
        pos_N=np.asarray(pos),
        unique_N=np.ones(len(acts), bool),
        seq_N=seq,
        seq_column=lambda name: np.asarray({"k": k, "n_prompt": n_prompt, "source": source}[name])[seq],
    )


def test_stratified_means__each_stratum_weighs_the_same_whatever_its_size():
    operand, answer = ROLES.index("operand"), ROLES.index("answer")
    # three operand rows at k=1 (value 1), one answer row at k=1 (value 5), one decision row (value 9)
    c = cache(
        [1, 1, 1, 5, 9], [operand] * 3 + [answer, 0], [0, 1, 2, 5, 3], [9, 9, 9, 9, 4], [1] * 5, ["canonical"] * 5
    )
    rows = rows_of(c, "canonical")
    assert len(set(strata(c, rows).tolist())) == 3
    assert stratified_means(Identity(), c, rows).item() == torch.tensor((1 + 5 + 9) / 3).item()
    assert len(rows_of(c, "sampled")) == 0


def test_sequence_activity__averages_the_groups_codes_over_the_masked_positions_only():
    from tests_toys import IdentitySAE

    from probes.diff import sequence_activity

    acts_BLD = torch.zeros(2, 4, 3)
    acts_BLD[0, :, 0] = torch.tensor([9.0, 1.0, 3.0, 0.0])  # latent 0; position 0 is prompt, 3 is padding
    acts_BLD[0, :, 1] = torch.tensor([9.0, 3.0, 5.0, 7.0])
    acts_BLD[1, :, 2] = 4.0  # a latent outside the group
    mask_BL = torch.tensor([[0, 1, 1, 0], [0, 1, 1, 1]])
    out = sequence_activity(IdentitySAE(3), acts_BLD, mask_BL, [0, 1])
    assert out.tolist() == [((1 + 3) / 2 + (3 + 5) / 2) / 2, 0.0]
    assert sequence_activity(IdentitySAE(3), acts_BLD, torch.zeros(2, 4), [0]).tolist() == [0.0, 0.0]
