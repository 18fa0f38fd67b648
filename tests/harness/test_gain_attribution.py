"""Gain attribution on a planted case: fine-tuning changed exactly one latent, so the answer is known."""

import numpy as np
import pytest
import torch
from tests_toys import ANS, DELIB, NUMBERS, SHORT, STEP, A, B, D, IdentitySAE, ToyBridge

from experiments.harness.reading.gain_attribution import attribute_gain, slices
from experiments.harness.reading.patching import Lockstep
from probes.causal import patch_hook

IDS = torch.tensor([(0, A, 3), (0, B, 3)] * 10)


def score(model, rows=None, on_batch=None):
    """Per row: a direct answer right at rows of A, a trace step right at rows of B (half the rows each)."""
    rows = np.arange(len(IDS)) if rows is None else np.asarray(rows)
    if on_batch is not None:
        on_batch(list(range(len(rows))))  # one batch
    logits = model(input_ids=IDS[rows]).logits[:, 1]
    best = torch.as_tensor(NUMBERS)[logits[:, NUMBERS].argmax(-1)].numpy()
    return best == np.where(rows % 2 == 0, ANS, STEP)


def test_attribute_gain__the_planted_latent_carries_the_whole_gain_and_a_random_group_its_share():
    """Base: the shortcut latent is silent, so direct answers fail. Fine-tuned: it fires (the whole gain). The
    shortcut group carries all of it, random groups of noise latents none; a 'random' group that happens to be the
    shortcut latent carries it all too, so the deliberation group's specific share is -1: specificity is relative."""
    base, tuned, sae = ToyBridge(short=0.0), ToyBridge(short=2.0), IdentitySAE(D)
    groups = {"shortcut": [SHORT], "deliberation": [DELIB], "mode": []}
    res = attribute_gain(
        score,
        len(IDS),
        0.5,
        1.0,
        tuned,
        base,
        sae,
        "hook",
        groups,
        randoms={"shortcut": [[3], [4]], "deliberation": [[SHORT], [SHORT]]},
    )
    assert res.acc_tuned == 1.0 and res.gain == 0.5 and set(res.patched) == {"shortcut", "deliberation"}
    assert res.path_agreement == 1.0 and all(len(v) == 2 for v in res.random_patched.values())
    frac = res.fractions()
    assert frac["shortcut"] == {"carried": 1.0, "random": 0.0, "specific": 1.0}
    assert frac["deliberation"] == {"carried": 0.0, "random": 1.0, "specific": -1.0}


def test_slices__disjoint_and_cover_every_row():
    parts = slices(50, 7)
    assert sorted(np.concatenate(parts).tolist()) == list(range(50)) and all(len(p) in (7, 8) for p in parts)


def patched(main, donor, sae, group):
    return Lockstep(main, donor, "hook", lambda acts: patch_hook(sae, group, acts))


def test_lockstep__an_empty_group_or_a_donor_equal_to_the_main_model_changes_nothing():
    tuned, base, sae = ToyBridge(short=2.0), ToyBridge(short=0.0), IdentitySAE(D)
    plain = tuned.original_model(IDS).logits
    assert torch.equal(patched(tuned, base, sae, []).forward(input_ids=IDS).logits, plain)
    assert torch.allclose(patched(tuned, ToyBridge(short=2.0), sae, range(D)).forward(input_ids=IDS).logits, plain)
    out = patched(tuned, base, sae, [SHORT]).forward(input_ids=IDS).logits
    assert torch.allclose(out, base.original_model(IDS).logits)  # only SHORT differed
    assert not torch.allclose(out, plain)


@pytest.mark.parametrize("group", [[], "all"])
def test_lockstep__kv_cached_sampling_matches_full_forwards(smoke_study, group):
    """With a real model: greedy KV-cached decoding through the lockstep pair reproduces, token by
    token, the argmax of full (uncached) forwards of the same pair: the donor's cache stays in step."""
    from experiments.harness import seeds
    from experiments.harness.tasks.arith import Arithmetic, TaskSpec, prompt_words
    from experiments.harness.tasks.family import EOS, PAD
    from experiments.harness.training.sampling import sample
    from probes.models import load_bridge, load_tokenizer
    from probes.saes.train import load_sae

    run = smoke_study[0]
    bridge, donor = load_bridge(run / "base"), load_bridge(run / "base")
    with torch.no_grad():
        for p in donor.original_model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    tok = load_tokenizer(run / "base")
    sae = load_sae(next((run / "sae").iterdir()))
    hook = sae.cfg.metadata.hook_name
    model = Lockstep(
        bridge, donor, hook, lambda acts: patch_hook(sae, range(sae.cfg.d_sae) if group == "all" else group, acts)
    )
    problems = seeds.problems("causal", 0, 2, 4, Arithmetic(TaskSpec(5, ("+",))))
    prompts = [tok.convert_tokens_to_ids(prompt_words(pr)) for pr in problems]
    out = sample(
        model,
        prompts,
        max_new=8,
        eos_id=tok.convert_tokens_to_ids(EOS),
        pad_id=tok.convert_tokens_to_ids(PAD),
        temperature=0.0,
    )
    for prompt, new in zip(prompts, out):
        full = torch.tensor([prompt + new])
        with torch.no_grad():
            logits = model(input_ids=full).logits[0]
        assert logits[len(prompt) - 1 : len(prompt) - 1 + len(new)].argmax(-1).tolist() == new
