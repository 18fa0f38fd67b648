"""Change dictionaries on planted cases: fine-tuning changed exactly one latent, so every answer is known.

The toy models (tests_toys) differ only in the SHORT coordinate at rows of token A (base 0, tuned 2).
A difference dictionary with the identity decoder and a crosscoder whose latent j reads coordinate j of
the tuned half (base half of its decoder empty for SHORT) both write that change as latent SHORT alone.
"""

import types

import numpy as np
import pytest
import torch
from tests_toys import ANS, NUMBERS, SHORT, A, B, D, ToyBridge, readouts

from experiments.harness.reading.model_diffing import DiffingSpec, read_dictionary
from experiments.harness.reading.patching import Lockstep
from probes.attribution import attribute
from probes.saes.change import ChangeDictionary, change_hook, kind_of, splice_hook
from probes.saes.train import SAESpec, TrainSpec

IDS = torch.tensor([(0, A, 3), (0, B, 3)] * 4)


class ToyDictionary(torch.nn.Module):
    """codes = relu(x @ W_enc), decode = codes @ W_dec; metadata names the kind."""

    def __init__(self, W_enc, W_dec, kind):
        super().__init__()
        self.W_enc, self.W_dec = W_enc, W_dec
        self.cfg = types.SimpleNamespace(metadata={"dictionary": kind}, d_in=W_enc.shape[0])

    def encode(self, x):
        return torch.relu(x @ self.W_enc)

    def decode(self, codes):
        return codes @ self.W_dec


def difference() -> ChangeDictionary:
    return ChangeDictionary.of(ToyDictionary(torch.eye(D), torch.eye(D), "difference"))


def crosscoder() -> ChangeDictionary:
    """Latent j < D is shared (reads both halves of coordinate j, decodes into both), except SHORT, which
    reads the tuned model's excess over the base there and decodes into the tuned half only; latent D
    carries the base's SHORT coordinate into both halves."""
    W_enc = torch.cat([torch.eye(D, D + 1) / 2, torch.eye(D, D + 1) / 2])
    W_enc[SHORT, SHORT], W_enc[D + SHORT, SHORT], W_enc[SHORT, D] = -1.0, 1.0, 1.0
    W_dec = torch.cat([torch.eye(D + 1, D), torch.eye(D + 1, D)], 1)
    W_dec[SHORT, SHORT] = 0.0  # the planted latent's base half is empty
    W_dec[D, SHORT], W_dec[D, D + SHORT] = 1.0, 1.0
    return ChangeDictionary.of(ToyDictionary(W_enc, W_dec, "crosscoder"))


def logits(model):
    return model(input_ids=IDS).logits


@pytest.mark.parametrize("make", [difference, crosscoder])
def test_change_hook__steering_the_base_with_the_planted_latent_gives_the_tuned_model_and_ablating_it_gives_the_base(
    make,
):
    base, tuned, dic = ToyBridge(short=0.0), ToyBridge(short=2.0), make()
    assert kind_of(dic.sae) == dic.kind
    steer = lambda g: logits(Lockstep(base, tuned, "hook", lambda p: change_hook(dic, g, "base", p)))  # noqa: E731
    ablate = lambda g: logits(Lockstep(tuned, base, "hook", lambda p: change_hook(dic, g, "tuned", p)))  # noqa: E731
    torch.testing.assert_close(steer([SHORT]), tuned.original_model(IDS).logits)
    torch.testing.assert_close(ablate([SHORT]), base.original_model(IDS).logits)
    other = [j for j in range(dic.change_dec.shape[0]) if j != SHORT]
    torch.testing.assert_close(steer(other), base.original_model(IDS).logits)  # the other latents carry no change
    torch.testing.assert_close(ablate(other), tuned.original_model(IDS).logits)


def test_splice_hook__a_complete_dictionary_rebuilds_each_model():
    base, tuned = ToyBridge(short=0.0), ToyBridge(short=2.0)
    for dic in (difference(), crosscoder()):
        for side, main, donor in (("base", base, tuned), ("tuned", tuned, base)):
            spliced = logits(Lockstep(main, donor, "hook", lambda p, dic=dic, side=side: splice_hook(dic, side, p)))
            torch.testing.assert_close(spliced, main.original_model(IDS).logits)


@pytest.mark.parametrize("make", [difference, crosscoder])
def test_tuned_view__attribution_through_the_pair_finds_the_planted_change_latent(make):
    base, tuned, dic = ToyBridge(short=0.0), ToyBridge(short=2.0), make()
    lock = Lockstep(tuned, base, "hook")
    att = attribute(lock, dic.view(lock.donor_acts), "hook", readouts(A, ANS, NUMBERS), pad_id=0, batch_size=4)
    attr_F = att.attr_SF.sum(0)
    assert attr_F[SHORT] > 0 and np.abs(np.delete(attr_F, SHORT)).max() < 1e-6 * attr_F[SHORT]
    assert att.codes_RF[:, SHORT] == pytest.approx(np.full(6, 2.0))


class FakePair:
    """What read_dictionary reads of a pair: its name and its activations per split."""

    def __init__(self, run, base, tuned):
        self.run, self._acts = run, (base, tuned)

    def acts(self, split):
        return self._acts


def test_read_dictionary__a_change_another_band_shares_is_not_unique_and_one_it_lacks_is():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(400, D, generator=g)
    fires = (torch.rand(400, generator=g) < 0.3) * (1 + torch.rand(400, generator=g))
    planted = base.clone()
    planted[:, SHORT] += fires
    mine = [FakePair("a/seed0", base, planted)]
    same, none = [FakePair("b/seed0", base, planted.clone())], [FakePair("c/seed0", base, base.clone())]
    spec = DiffingSpec(SAESpec(d_sae=D, top_k=1.0), TrainSpec(n_samples=2, batch_size=2))
    reading = read_dictionary(difference(), mine, {"b": same, "c": none}, spec)
    assert reading.group == [SHORT] and reading.fve["a/seed0"] == pytest.approx(1.0)
    assert reading.elsewhere["b"][SHORT] == pytest.approx(1.0) and reading.elsewhere["c"][SHORT] == pytest.approx(0.0)
    assert reading.unique() == []
    assert read_dictionary(difference(), mine, {"c": none}, spec).unique() == [SHORT]


def test_read_dictionary__bands_with_more_or_fewer_hitting_pairs_compare_on_the_pairs_both_have():
    """A band matched at four seeds beside one matched at two: pair i of each reads the same base tokens, so the
    other band's share is measured on as many pairs as both have, either way round."""
    g = torch.Generator().manual_seed(1)
    base = torch.rand(300, D, generator=g)
    planted = base.clone()
    planted[:, SHORT] += (torch.rand(300, generator=g) < 0.3) * (1 + torch.rand(300, generator=g))
    four = [FakePair(f"a/seed{i}", base, planted) for i in range(4)]
    two = [FakePair(f"b/seed{i}", base, planted.clone()) for i in range(2)]
    spec = DiffingSpec(SAESpec(d_sae=D, top_k=1.0), TrainSpec(n_samples=2, batch_size=2))
    assert read_dictionary(difference(), four, {"b": two}, spec).elsewhere["b"][SHORT] == pytest.approx(1.0)
    assert read_dictionary(difference(), two, {"a": four}, spec).elsewhere["a"][SHORT] == pytest.approx(1.0)
