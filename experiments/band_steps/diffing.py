"""Reading the checkpoints: every checkpoint in each SAE basis, and model diffing of each band's claim checkpoints.

Steps of ``experiments.band_study``; each takes the study's arguments and is resumable on its own."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from safetensors.torch import save_file

from experiments import grpo
from experiments.analysis.contrasts import MIN_SEEDS
from experiments.band_steps.matching import matched_points
from experiments.band_steps.sae_groups import causal_problems
from experiments.harness.reading.diffing import means_tensors, read_all
from experiments.harness.reading.model_diffing import Pair, band_record
from experiments.harness.reading.sources import cache_activations, open_source
from experiments.harness.rundir import atomic_file, write_json
from probes.bands import BANDS
from probes.layout import MODEL_DIFFING, RunLayout, read_json, run_name
from probes.saes.train import load_sae

if TYPE_CHECKING:
    from experiments.band_study import BandStudyArgs


def diff_stage(args: BandStudyArgs, features: dict[str, dict]) -> dict[str, dict]:
    """Read every checkpoint in every SAE basis; latent means also go to latent_means.safetensors.

    Activation caches persist under acts/, so a rerun only re-encodes them; the missing ones are made first, one
    job per checkpoint on the study's executor."""
    layout = RunLayout(args.out)
    blends = [
        grpo.at_step(args.band_runs[n], step)
        for n, step in matched_points(args).items()
        if not float(step).is_integer()
    ]
    ckpts = [*layout.checkpoints(), *blends]
    caching = [(args.diff_source, c) for c in ckpts]
    args.run_jobs(cache_activations, caching, "diff: probe sets and activations")  # reading them after only encodes
    saes = {name: load_sae(layout.sae(name), args.run_device) for name in features}
    readings = read_all(args.diff_source, ckpts, saes)
    with atomic_file(layout.latent_means) as tmp:
        save_file(means_tensors(readings), str(tmp))
    return readings


def claim_checkpoints(args: BandStudyArgs) -> dict[str, tuple[str, dict[str, float]]]:
    """Per band: "matched" with the matched points of its first ``diffing_seeds`` hitting runs where at least
    MIN_SEEDS runs hit the target (a band the contrasts can use), else "final" with the last step of its first
    ``diffing_seeds`` runs (equal budget, unmatched)."""
    points = matched_points(args)
    out = {}
    for band in BANDS:
        names = [run_name(band, s) for s in args.seeds]
        hits = [n for n in names if n in points]
        if len(hits) >= MIN_SEEDS:
            out[band] = ("matched", {n: points[n] for n in hits[: args.diffing_seeds or None]})
        else:
            out[band] = ("final", dict.fromkeys(names[: args.diffing_seeds or None], args.grpo_steps))
    return out


def made_with(args: BandStudyArgs, claims: dict[str, tuple[str, dict[str, float]]], band: str) -> dict:
    """What a band's model_diffing.json is made with; a record that says otherwise is redone."""
    held_out = grpo.RunInputs.read(args.grpo_args(BANDS[0], args.seeds[0])).eval_per_k(args.diffing_per_k).eval_set
    made = {
        "claim": claims[band][0],
        "steps": claims[band][1],
        "spec": dataclasses.asdict(args.diffing_spec),
        "n_rollouts": len(held_out) * args.diffing_rollouts,
    }
    return json.loads(json.dumps(made))


def claim_pairs(args: BandStudyArgs, claims: dict[str, tuple[str, dict[str, float]]]) -> dict[str, list[Pair]]:
    """Per band: its (base, claim checkpoint) pairs as sources at the diffing hook (caches made where missing)."""
    base, gargs = open_source(args.diffing_source, RunLayout(args.out).base), args.band_runs
    return {
        b: [
            Pair(n, base, open_source(args.diffing_source, grpo.at_step(gargs[n], step)))
            for n, step in claims[b][1].items()
        ]
        for b in BANDS
    }


def diffing_stage(args: BandStudyArgs, features: dict[str, dict]) -> dict[str, dict]:
    """Per band: a crosscoder and a difference SAE over its seeds' (base, claim checkpoint) pairs, read,
    labelled and causally checked (``band_diffing``, one job per band on the study's executor);
    diffing/<band>/model_diffing.json keeps each band, so a rerun reuses it. Returns the records per band."""
    layout, claims = RunLayout(args.out), claim_checkpoints(args)
    path = lambda band: layout.diffing(band) / MODEL_DIFFING  # noqa: E731
    done, made = (
        {b: read_json(path(b)) for b in BANDS if path(b).exists()},
        {b: made_with(args, claims, b) for b in BANDS},
    )
    todo = [b for b in BANDS if {k: done.get(b, {}).get(k) for k in made[b]} != made[b]]
    if todo:
        pairs = claim_pairs(args, claims)  # every activation cache made here, once, before any worker reads it
        moved = {b for b in todo if any(p.changed for p in pairs[b])}
        for band in set(todo) - moved:  # nothing to diff: every claim checkpoint reads like the base model
            write_json(path(band), {**made[band], "unchanged": True})
        shortcut_k = features[args.sae_args(args.sae_archs[0]).sae_name]["spec"]["shortcut_k"]
        args.run_jobs(band_diffing, [(args, b, shortcut_k) for b in todo if b in moved])
    return {b: read_json(path(b)) for b in BANDS}


def band_diffing(job: tuple[BandStudyArgs, str, int]) -> None:
    """One band's change dictionaries, readings, labels and causal checks
    (``experiments.harness.reading.model_diffing``), written to its model_diffing.json; the other moved bands' pairs say
    which latents only this band has."""
    args, band, shortcut_k = job
    layout, spec, hook, claims = (
        RunLayout(args.out),
        args.diffing_spec,
        args.diffing_source.hook,
        claim_checkpoints(args),
    )
    pairs, gargs = claim_pairs(args, claims), args.band_runs
    sae_name = args.sae_args(args.sae_archs[0]).sae_name
    label_split, _ = causal_problems(args, args.sae_args(args.sae_archs[0]).probe_spec)

    def accuracy_of(pair: Pair):
        g, tok = gargs[pair.run], pair.tuned.tokenizer
        inputs = grpo.RunInputs.read(g).eval_per_k(args.diffing_per_k)
        return lambda model: grpo.sampled_accuracy(model, tok, g, inputs, args.diffing_rollouts)

    others = {b: pairs[b] for b in BANDS if b != band and any(p.changed for p in pairs[b])}
    sae = load_sae(layout.sae(sae_name), args.run_device)
    record = band_record(
        pairs[band], others, spec, hook, label_split, shortcut_k, accuracy_of, sae, layout.diffing(band)
    )
    base = pairs[band][0].base
    caches = {
        "base": layout.name_of(base.cache.path),
        **{p.run: layout.name_of(p.tuned.cache.path) for p in pairs[band]},
    }
    write_json(layout.diffing(band) / MODEL_DIFFING, {**made_with(args, claims, band), **record, "caches": caches})
