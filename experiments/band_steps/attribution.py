"""At the matched points: gain attribution to the groups, and deliberation activity on hard-band rollouts.

Steps of ``experiments.band_study``; each takes the study's arguments and is resumable on its own."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from experiments import grpo
from experiments.band_steps.matching import matched_points, run_data
from experiments.harness import seeds
from experiments.harness.reading.feature_groups import ATTRIBUTED
from experiments.harness.reading.gain_attribution import attribute_gain
from experiments.harness.reading.rollout_activity import rollout_activity
from experiments.harness.rundir import write_json
from probes.layout import GAIN_ATTRIBUTION, ROLLOUT_ACTIVITY, RunLayout, checkpoints, read_json, run_name
from probes.models import load_bridge, load_tokenizer
from probes.saes.train import load_sae

if TYPE_CHECKING:
    from experiments.band_study import BandStudyArgs


@dataclasses.dataclass(frozen=True)
class AttributionJob:
    """Attribute one hitting run's matched gain to the headline SAE's groups (``attribute_run``)."""

    run: grpo.GRPOArgs
    step: float
    sae_dir: Path
    hook: str
    groups: dict[str, list[int]]
    randoms: dict[str, list[list[int]]]
    acc_base: float
    matched_acc: float
    made: dict
    """What the record is made with; a record that says otherwise is redone."""
    device: str


def attribute_run(job: AttributionJob) -> dict:
    """The run's gain attribution record for the SAE, made now (and written to gain_attribution.json) unless the
    file holds one made the same way."""
    g, name = job.run, job.sae_dir.name
    path = g.out / GAIN_ATTRIBUTION
    record = read_json(path) if path.exists() else {}
    if {k: record.get(name, {}).get(k) for k in job.made} != job.made:
        ckpt, inputs = grpo.at_step(g, job.step), grpo.RunInputs.read(g)
        score = functools.partial(
            grpo.sampled_correct, tokenizer=load_tokenizer(ckpt), args=g, inputs=inputs, n_samples=g.eval_samples
        )
        base = load_bridge(RunLayout(g.run).base, job.device)
        res = attribute_gain(
            score,
            len(inputs.eval_set) * g.eval_samples,
            job.acc_base,
            job.matched_acc,
            load_bridge(ckpt, job.device),
            base,
            load_sae(job.sae_dir, job.device),
            job.hook,
            job.groups,
            job.randoms,
        )
        record[name] = {**job.made, **dataclasses.asdict(res)}
        write_json(path, record)
    return record[name]


def attribution_job(
    run: grpo.GRPOArgs, step: float, sae_dir: Path, features: dict, acc_base: float, matched_acc: float, device: str
) -> AttributionJob:
    """The job attributing ``run``'s gain at ``step`` to the attributed groups of the SAE in ``sae_dir`` (its
    ``features``: groups, and each causal check's random groups)."""
    groups = {g: features["groups"][g] for g in ATTRIBUTED}
    randoms = {g: c["random_groups"] for g, c in features["causal"]["checks"].items()}
    made = {"step": step, "n_samples": run.eval_samples, "groups": groups, "random_groups": randoms}
    hook = features["meta"]["hook"]
    return AttributionJob(run, step, sae_dir, hook, groups, randoms, acc_base, matched_acc, made, device)


def gain_stage(args: BandStudyArgs, features: dict[str, dict]) -> dict[str, dict]:
    """At every hitting run's matched point, patch each group of the headline SAE back to base values, and each of
    its matched random groups (``experiments.harness.reading.gain_attribution``); every condition samples the run's own
    eval draws, so the shares divide by the matched gain itself. One job per run on the study's executor; each
    run's gain_attribution.json keeps the result, so a rerun reuses it. Returns the records per run (none without
    a target)."""
    points = matched_points(args)
    if not points:
        return {}
    layout, sae_name, runs = RunLayout(args.out), args.sae_args(args.sae_archs[0]).sae_name, run_data(args)
    jobs = {
        n: attribution_job(
            g,
            points[n],
            layout.sae(sae_name),
            features[sae_name],
            runs.metrics[n][0][args.matched_key],
            runs.row_at(n, points[n])[args.matched_key],
            args.run_device,
        )
        for n, g in args.band_runs.items()
        if n in points
    }
    return dict(zip(jobs, args.run_jobs(attribute_run, list(jobs.values()), "gain attribution: matched runs")))


@dataclasses.dataclass(frozen=True)
class ActivityJob:
    """Read one hard-band run's deliberation activity at the checkpoints its record lacks (``activity_run``)."""

    run: grpo.GRPOArgs
    sae_dir: Path
    hook: str
    group: list[int]
    spec: dict
    """What the record is made with; a record that says otherwise is redone."""
    device: str

    @property
    def path(self) -> Path:
        return self.run.out / ROLLOUT_ACTIVITY

    def record(self) -> dict:
        record = read_json(self.path) if self.path.exists() else {}
        return record if record.get("spec") == self.spec else {"spec": self.spec, "steps": {}}

    def missing(self) -> dict[int, Path]:
        """The checkpoints to read, by step: the base model (step 0) and every stored one (not replays) the record
        lacks."""
        stored = {s: c for s, c in checkpoints(self.run.out).items() if s % self.run.checkpoint_every == 0}
        done = self.record()["steps"]
        return {s: c for s, c in {0: RunLayout(self.run.run).base, **stored}.items() if str(s) not in done}


def activity_run(job: ActivityJob) -> None:
    """Read each checkpoint ``job`` lacks on the run's rollouts of its first ``spec["problems"]`` hard-pool problems,
    writing the record after each."""
    record, sae, spec = job.record(), load_sae(job.sae_dir, job.device), job.spec
    problems = grpo.RunInputs.read(job.run).pool[: spec["problems"]]
    sampling = seeds.rollout_activity(job.run.seed)  # the same draws at every checkpoint of the run
    for step, ckpt in job.missing().items():
        bridge, tokenizer = load_bridge(ckpt, job.device), load_tokenizer(ckpt)
        reading = rollout_activity(bridge, tokenizer, sae, job.hook, job.group, problems, spec["samples"], sampling)
        record["steps"][str(step)] = reading
        write_json(job.path, record)


def activity_stage(args: BandStudyArgs, features: dict[str, dict]) -> dict[str, dict]:
    """At the base model and every stored checkpoint of each hard-band run, the headline SAE's
    deliberation-group activity on the run's rollouts of fixed hard-pool problems, with their success; one job per
    run on the study's executor, for the runs whose rollout_activity.json lacks a step (a rerun resumes). Returns
    the records per run."""
    layout, sae_name = RunLayout(args.out), args.sae_args(args.sae_archs[0]).sae_name
    feats = features[sae_name]
    group, hook = feats["groups"]["deliberation"], feats["meta"]["hook"]
    if not group:
        return {}
    spec = {"sae": sae_name, "group": group, "problems": args.activity_problems, "samples": args.activity_samples}
    jobs = {
        run_name("hard", seed): ActivityJob(
            args.grpo_args("hard", seed), layout.sae(sae_name), hook, group, spec, args.run_device
        )
        for seed in args.seeds
    }
    todo = [job for job in jobs.values() if job.missing()]
    args.run_jobs(activity_run, todo, "hard-band rollouts: deliberation activity")
    return {name: job.record()["steps"] for name, job in jobs.items()}
