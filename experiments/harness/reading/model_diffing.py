"""Change dictionaries per band: a crosscoder and a difference SAE over (base, fine-tuned) pairs.

For one band, each seed's claim checkpoint (the matched one, or the final one where the band is
not matched) is paired with the base model on the same teacher-forced canonical tokens
(``probes.saes.crosscoder.aligned_rows``). Both dictionaries train on the pooled train split of
every pair and are read on the eval split:

* which latents are the band's change: a crosscoder's live latents whose relative decoder norm
  exceeds TUNED_ONLY and that Latent Scaling confirms; a difference SAE's live latents, largest
  change mass first, covering ``share`` of it;
* whether another band's fine-tune added the same directions (``elsewhere``): the Latent Scaling
  beta of each latent's change direction in the other band's changes over its beta in this
  band's own, with this band's codes;
* labels: attribution of the band's read-outs in the tuned model to every latent (``probes.
  attribution`` through the pair run in lockstep), grouped by the band study's selection rule;
* per seed: accuracy and next-token loss with each dictionary spliced in, and the causal checks
  (steer the base model with the group's change, ablate it in the tuned model; a matched random
  group of the same dictionary beside each).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from experiments.harness.reading.feature_groups import FEATURE_GROUPS, NAMES
from experiments.harness.reading.patching import Lockstep
from experiments.harness.reading.readouts import task_readouts
from experiments.harness.reading.sources import Source
from experiments.harness.rundir import atomic_dir
from experiments.harness.tasks.family import PAD, Problem
from probes.attribution import attribute, select_groups
from probes.causal import matched_random_groups
from probes.saes.change import DICTIONARIES, ChangeDictionary, Kind, change_hook, splice_hook
from probes.saes.crosscoder import NU_MAX, TUNED_ONLY, aligned_rows, latent_scaling, relative_norm, specificity
from probes.saes.eval import next_token_loss, sae_replacement, spliced
from probes.saes.train import (
    SAESpec,
    TrainSpec,
    build_crosscoder,
    build_sae,
    load_sae,
    save_sae,
    tensor_batches,
    train_sae,
)

UNLABELLED = "unlabelled"


@dataclasses.dataclass(frozen=True)
class DiffingSpec:
    """How a band's change dictionaries are trained, read and checked (fixed before any result)."""

    dictionary: SAESpec
    train: TrainSpec
    share: float = 0.5
    """A difference SAE's group covers this share of its live latents' change mass (the labels' share too)."""
    max_group: int = 64
    """Largest group."""
    seed: int = 0
    """Seeds the matched random groups."""


@dataclasses.dataclass(frozen=True)
class Pair:
    """One seed's claim checkpoint with the base model, on the same canonical tokens."""

    run: str
    base: Source
    tuned: Source

    @functools.cached_property
    def rows_2R(self) -> Int[np.ndarray, "two R"]:
        """The aligned row pairs of the two caches (matched once; every reading of the pair reuses them)."""
        return aligned_rows(self.base.cache, self.tuned.cache)

    def acts(self, split: str) -> tuple[Float[Tensor, "N D"], Float[Tensor, "N D"]]:
        """(a_base, a_tuned) at the split's aligned tokens, in the base cache's row order."""
        rows_2R = self.rows_2R[:, self.base.cache.seq_column("split")[self.rows_2R[0]] == split]
        if rows_2R.shape[1] == 0:
            raise ValueError(f"{self.run}: no aligned canonical tokens in the {split!r} split")
        base, tuned = (
            torch.from_numpy(np.asarray(s.cache.acts_ND[rows_2R[m]])) for m, s in enumerate((self.base, self.tuned))
        )
        return base, tuned

    @functools.cached_property
    def changed(self) -> bool:
        """Whether the tuned model reads any training token differently (a run whose groups never had reward
        variance takes no gradient step that moves the weights)."""
        base, tuned = self.acts("train")
        return not torch.equal(base, tuned)


def pooled(pairs: Sequence[Pair], split: str) -> tuple[Tensor, Tensor]:
    base, tuned = zip(*(p.acts(split) for p in pairs))
    return torch.cat(base), torch.cat(tuned)


def train_dictionary(kind: Kind, pairs: Sequence[Pair], spec: DiffingSpec, metadata: dict):
    """A crosscoder or a difference SAE fitted on the pairs' pooled train-split tokens."""
    base, tuned = pooled(pairs, "train")
    shape = dataclasses.replace(spec.dictionary, arch="batchtopk")
    if kind == "crosscoder":
        sae, rows = (
            build_crosscoder(shape, base.shape[1], metadata, spec.train.device, spec.train.seed),
            torch.cat([base, tuned], -1),
        )
    else:
        sae, rows = (
            build_sae(
                shape, base.shape[1], {**metadata, "dictionary": "difference"}, spec.train.device, spec.train.seed
            ),
            tuned - base,
        )
    return train_sae(sae, tensor_batches(rows, spec.train.batch_size, seed=spec.train.seed), spec.train).sae


@dataclasses.dataclass(frozen=True)
class Reading:
    """A change dictionary on the band's held-out tokens."""

    fve: dict[str, float]
    """Per pair (run): variance of the dictionary's input (the pair's rows or their difference) it explains."""
    l0: dict[str, float]
    """Per pair: mean active latents per token."""
    dead_frac: float
    """Latents that fire on no held-out token of any pair."""
    relative_norm: list[float]
    """Crosscoder: |d^tuned| / (|d^base| + |d^tuned|) per latent (empty for a difference SAE)."""
    candidates: list[int]
    """Crosscoder: live latents above TUNED_ONLY; difference SAE: the latents covering the change mass share."""
    nu: dict[int, tuple[float, float]]
    """Crosscoder: Latent Scaling ratios (error, reconstruction) per candidate."""
    group: list[int]
    """The band's change latents: confirmed candidates (crosscoder) or the candidates (difference SAE)."""
    elsewhere: dict[str, dict[int, float]]
    """Per other band: per group latent, beta of its change direction in that band's changes over beta in this
    band's."""
    fire_rate: list[float]
    mass: list[float]
    """Per latent: firing rate and mean code on the held-out tokens (for matched random groups)."""
    change_mass: list[float]
    """Per latent: mean code times the norm of its change direction (how much of the change it writes)."""

    def unique(self) -> list[int]:
        """Group latents that no other band's fine-tune added (ratio below NU_MAX in every other band)."""
        return [j for j in self.group if all(abs(r.get(j, np.nan)) < NU_MAX for r in self.elsewhere.values())]


def _fve(x_ND: Tensor, x_hat_ND: Tensor) -> float:
    return float(1 - ((x_ND - x_hat_ND) ** 2).sum() / ((x_ND - x_ND.mean(0)) ** 2).sum().clamp(min=1e-12))


@torch.no_grad()
def read_dictionary(
    dic: ChangeDictionary, pairs: Sequence[Pair], others: Mapping[str, Sequence[Pair]], spec: DiffingSpec
) -> Reading:
    """Faithfulness per pair, the change group, Latent Scaling (crosscoder) and the other bands' share of it."""
    inputs = lambda b, t: torch.cat([b, t], -1) if dic.kind == "crosscoder" else t - b  # noqa: E731
    on = lambda xs: tuple(x.to(dic.sae.W_dec.device) for x in xs)  # noqa: E731 -- caches are read on the CPU
    fve, l0 = {}, {}
    for p in pairs:
        b, t = on(p.acts("eval"))
        x, codes = inputs(b, t), dic.codes(b, t)
        fve[p.run], l0[p.run] = _fve(x, dic.sae.decode(codes)), float((codes > 0).float().sum(-1).mean())
    base, tuned = on(pooled(pairs, "eval"))
    codes_NF = dic.codes(base, tuned)
    fires_F, mass_F = (codes_NF > 0).float().mean(0), codes_NF.mean(0)
    live = torch.nonzero(fires_F > 0).flatten().tolist()
    rel_F, nu, change_F = torch.empty(0), {}, (mass_F * dic.change_dec.norm(dim=-1)).cpu().numpy()
    if dic.kind == "crosscoder":
        rel_F = relative_norm(dic.sae.W_dec.detach())
        candidates = [j for j in live if rel_F[j] > TUNED_ONLY]
        nu = specificity(dic.sae, inputs(base, tuned), candidates)
        group = [j for j in candidates if all(abs(v) < NU_MAX for v in nu[j])]
    else:
        live_F = np.zeros(len(change_F), bool)
        live_F[live] = True
        candidates = group = select_groups({"change": change_F}, live_F, spec.share, spec.max_group)["change"]
    delta = tuned - base
    own = {j: latent_scaling(codes_NF[:, j], delta, dic.change_dec[j]) for j in group}
    elsewhere = {}
    for band, theirs in others.items():  # pair i of each band reads the same tokens: compare as many pairs as both have
        b, t = on(pooled(theirs[: len(pairs)], "eval"))
        if not torch.equal(b, base[: len(b)]):
            raise ValueError(f"{band}: its pairs do not read the same base tokens as {pairs[0].run}'s")
        theirs_beta = {j: latent_scaling(codes_NF[: len(b), j], t - b, dic.change_dec[j]) for j in group}
        elsewhere[band] = {j: beta / own[j] if own[j] else float("nan") for j, beta in theirs_beta.items()}
    return Reading(
        fve,
        l0,
        float((fires_F == 0).float().mean()),
        rel_F.tolist(),
        candidates,
        nu,
        group,
        elsewhere,
        fires_F.tolist(),
        mass_F.tolist(),
        change_F.tolist(),
    )


def labels(
    dic: ChangeDictionary,
    pairs: Sequence[Pair],
    live: Sequence[int],
    hook: str,
    problems: Sequence[Problem],
    shortcut_k: int,
    spec: DiffingSpec,
) -> dict[int, str]:
    """Every latent's behaviour group: attribution of each read-out in the tuned models (codes from
    the pair in lockstep), averaged over the pairs, then the band study's selection rule."""
    attr: dict[str, np.ndarray] = {}
    for p in pairs:
        lock = Lockstep(p.tuned.bridge, p.base.bridge, hook)
        view = dic.view(lock.donor_acts)
        vocab = p.tuned.tokenizer.get_vocab()
        for kind, ro in task_readouts(vocab, problems, shortcut_k).items():
            a = attribute(lock, view, hook, ro, vocab[PAD]).attr_SF.sum(0) / (len(problems) * len(pairs))
            attr[kind] = attr.get(kind, 0) + a
    live_F = np.zeros(dic.change_dec.shape[0], bool)
    live_F[list(live)] = True
    groups = select_groups({g.name: attr[g.readout] for g in FEATURE_GROUPS}, live_F, spec.share, spec.max_group)
    return {j: next((k for k in NAMES if j in groups[k]), UNLABELLED) for j in range(len(live_F))}


Accuracy = Callable[[object], float]


def random_group(reading: Reading, spec: DiffingSpec) -> list[int]:
    """One random group as large as the band's, matched in firing rate and mass among live latents."""
    fire, mass = np.asarray(reading.fire_rate), np.asarray(reading.mass)
    live = np.flatnonzero(fire > 0).tolist()
    return matched_random_groups(reading.group, live, fire, mass, 1, spec.seed)[0] if reading.group else []


def pair_effects(
    pair: Pair,
    accuracy: Accuracy,
    hook: str,
    base_sae,
    dics: Mapping[str, tuple[ChangeDictionary, list[int], list[int]]],
) -> dict[str, float]:
    """One seed's accuracies (``acc/...``) and canonical next-token losses (``ce/...``): clean, each
    dictionary spliced into each model, and with each dictionary's group (and its random twin)
    steered into the base model or ablated in the tuned one."""
    base, tuned = pair.base.bridge, pair.tuned.bridge
    evals = [s for s in pair.tuned.sequences if s.split == "eval"]
    pad = pair.tuned.tokenizer.pad_token_id
    ce = lambda m: next_token_loss(m, [s.token_ids for s in evals], [s.n_prompt for s in evals], pad_id=pad)  # noqa: E731
    out = {
        "acc/base": accuracy(base.original_model),
        "acc/tuned": accuracy(tuned.original_model),
        "ce/base": ce(base),
        "ce/tuned": ce(tuned),
    }
    with spliced(tuned, hook, sae_replacement(base_sae)):
        out["acc/tuned/base_sae"], out["ce/tuned/base_sae"] = accuracy(tuned.original_model), ce(tuned)
    for name, (dic, group, rand) in dics.items():
        for side, main, donor in (("base", base, tuned), ("tuned", tuned, base)):
            lock = Lockstep(main, donor, hook, lambda p, side=side, dic=dic: splice_hook(dic, side, p))
            out[f"acc/{side}/{name}"], out[f"ce/{side}/{name}"] = accuracy(lock), ce(lock)
            for label, g in (("group", group), ("random", rand)):
                if g:
                    lock = Lockstep(main, donor, hook, lambda p, side=side, dic=dic, g=g: change_hook(dic, g, side, p))
                    out[f"acc/{side}/{name}/{label}"] = accuracy(lock)
    return out


def dictionary(kind: Kind, pairs: Sequence[Pair], spec: DiffingSpec, hook: str, path: Path) -> ChangeDictionary:
    """The band's dictionary of this kind: the saved one when its metadata names these pairs and this spec,
    else trained and saved (then read back from disk, so a fresh and a resumed run read the same model)."""
    metadata = {
        "hook_name": hook,
        "model_name": "|".join(f"{p.run}/{p.tuned.checkpoint.name}" for p in pairs),
        "diffing_spec": json.dumps(dataclasses.asdict(spec), sort_keys=True),
    }
    if (path / "cfg.json").is_file():
        saved = load_sae(path, spec.train.device)
        if all(saved.cfg.metadata.get(k) == v for k, v in metadata.items()):
            return ChangeDictionary.of(saved)
    sae = train_dictionary(kind, pairs, spec, metadata)
    with atomic_dir(path) as tmp:
        save_sae(sae, tmp)
    return ChangeDictionary.of(load_sae(path, spec.train.device))


def band_record(
    pairs: Sequence[Pair],
    others: Mapping[str, Sequence[Pair]],
    spec: DiffingSpec,
    hook: str,
    problems: Sequence[Problem],
    shortcut_k: int,
    accuracy_of: Callable[[Pair], Accuracy],
    base_sae,
    out_dir: Path,
) -> dict:
    """One band's readings of both dictionaries and every seed's spliced and causal accuracies."""
    read: dict[str, tuple] = {}
    for kind in DICTIONARIES:
        dic = dictionary(kind, pairs, spec, hook, out_dir / kind)
        reading = read_dictionary(dic, pairs, others, spec)
        live = [j for j, f in enumerate(reading.fire_rate) if f > 0]
        read[kind] = (
            dic,
            reading,
            labels(dic, pairs, live, hook, problems, shortcut_k, spec),
            random_group(reading, spec),
        )
    checks = {kind: (dic, reading.group, rand) for kind, (dic, reading, _, rand) in read.items()}
    effects = {
        p.run: pair_effects(p, accuracy_of(p), hook, base_sae, checks)
        for p in tqdm(pairs, desc="diffing: spliced and causal")
    }
    return {
        "dictionaries": {
            kind: {
                **dataclasses.asdict(reading),
                "unique": reading.unique(),
                "random": rand,
                "labels": {j: lab[j] for j in reading.group},
            }
            for kind, (_, reading, lab, rand) in read.items()
        },
        "effects": effects,
    }
