"""The band study's numbers: matched gain, feature change, gain attribution with CIs, noise floor, verdict.

Everything here is computed from the run directory's artifacts (metrics.jsonl, the diff
readings, features.json) into typed results; the verdict sentence is assembled from
those numbers. ``BandStudyResult`` is results.json; ``diff_record`` is diff.json.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from experiments.analysis.activity_results import success_gap
from experiments.analysis.contrasts import GROUPS, contrasts, verdict
from experiments.analysis.gain_results import MEASURE, carried, fraction_estimates, fraction_values
from probes.bands import BANDS
from probes.diff import VIEWS, change_vector, group_activity, matched_values, relative_change
from probes.layout import band_of_run, checkpoint_name, run_name
from probes.matched_gain import (
    GainCurve,
    MatchedPoint,
    Matching,
    first_reaching,
    gain_curve,
    matchable_common_gain,
    with_points,
)
from probes.stats import Estimate, bootstrap_mean, cosine, noise_floor

BEHAVIOURS = ("deliberate_rate", "direct_rate", "format_error_rate", "skipped_step_rate", "wrong_step_rate",
              "copied_answer_rate", "lucky_success_rate", "mean_length", "trace_length")  # fmt: skip


MIN_TARGET_SE = 3.0
"""The matched gain must be at least this many standard errors of a gain (chosen before any result)."""


@dataclasses.dataclass(frozen=True)
class MatchPlan:
    """Where runs are matched, and how closely."""

    target: float
    tol: float
    """Tolerance around the target: by default one standard error of a gain."""
    se_gain: float
    """Median over evaluations of sqrt(se_base^2 + se_step^2): the noise of one measured gain."""
    noise_ok: bool
    """The target is at least MIN_TARGET_SE standard errors above zero."""


def gain_se(metrics: Mapping[str, list[dict]], key: str) -> float:
    """The typical standard error of a gain in ``key``, from the SEs each evaluation logged."""
    se_key = f"{key}_se"
    ses = []
    for rows in metrics.values():
        evaluated = [r for r in rows if se_key in r]
        if not evaluated:
            raise ValueError(f"matched_key: {key} has no logged standard error ({se_key})")
        ses += [float(np.hypot(evaluated[0][se_key], r[se_key])) for r in evaluated[1:]]
    return float(np.median(ses)) if ses else math.nan


def curves(metrics: Mapping[str, list[dict]], ckpt_steps: Mapping[str, set[int]], key: str) -> dict[str, GainCurve]:
    """Each run's gain in ``key`` at its checkpointed evaluations."""
    return {name: gain_curve(rows, key, steps=ckpt_steps[name]) for name, rows in metrics.items()}


def plan(curve_by_run: Mapping[str, GainCurve], se_gain: float, target: float | None, tol: float | None) -> MatchPlan:
    """Target and tolerance. The default target is the largest gain every run of every band whose
    runs all reach MIN_TARGET_SE standard errors reaches at a stored checkpoint: a band that never
    gets that far is matched against it and reported as not reaching it."""
    floor = MIN_TARGET_SE * se_gain
    band_of = {name: band_of_run(name) for name in curve_by_run}
    goal = matchable_common_gain(curve_by_run, band_of, floor) if target is None else target
    tol = se_gain if tol is None else tol
    return MatchPlan(goal, tol, se_gain, bool(goal >= floor))


def matching(curve_by_run: Mapping[str, GainCurve], extra: Mapping[str, Mapping[int, float]], p: MatchPlan) -> Matching:
    """Each run's matched point on its curve plus the steps measured in between (``extra``)."""
    points = {n: first_reaching(with_points(c, extra.get(n, {})), p.target, p.tol) for n, c in curve_by_run.items()}
    return Matching(p.target, points)


def final_gain(rows: Sequence[dict], key: str) -> float:
    evaluated = [r for r in rows if key in r]
    return evaluated[-1][key] - evaluated[0][key]


def behaviour(rows: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Eval-set behaviour rates at the first and the last evaluation."""
    evaluated = [r for r in rows if "eval/behaviour/deliberate_rate" in r]
    return {b: {"start": evaluated[0][f"eval/behaviour/{b}"], "end": evaluated[-1][f"eval/behaviour/{b}"]} for b in BEHAVIOURS}


def group_changes(readings: Mapping[str, dict], sae: str, groups: Mapping[str, Sequence[int]], ckpt: str, view: str = VIEWS[0]) -> dict[str, float]:
    """Relative change of each group's activity at ``ckpt`` vs the base model."""
    base = group_activity(readings["base"][sae]["means"][view], groups)
    return relative_change(group_activity(readings[ckpt][sae]["means"][view], groups), base)


def matched_changes(readings, sae: str, groups, m: Matching, seeds: Sequence[int]) -> dict[str, dict[str, list[float]]]:
    """Per band and group: the change at each seed's matched checkpoint (seeds that hit the target)."""
    points = {run_name(b, s): hit(m.points[run_name(b, s)]) for b in BANDS for s in seeds}
    ckpts = [f"{n}/{checkpoint_name(p.step)}" for n, p in points.items() if p.reached]
    changes = {c: group_changes(readings, sae, groups, c) for c in ckpts}
    return matched_values(changes, points, list(groups))


def estimates(values: Mapping[str, Mapping[str, list[float]]]) -> dict[str, dict[str, Estimate]]:
    return {band: {g: bootstrap_mean(v) for g, v in per_group.items()} for band, per_group in values.items()}


def floors(values: Mapping[str, Mapping[str, list[float]]], groups: Sequence[str]) -> dict[str, float]:
    """Per group: mean |difference| between seeds of the same band (pooled over bands)."""
    return {g: noise_floor([values[b][g] for b in values]) for g in groups}


def hit(point: MatchedPoint) -> MatchedPoint:
    """The point as counted in contrasts: reached only when its gain is within the tolerance."""
    return point if point.within_tol else dataclasses.replace(point, reached=False)


@dataclasses.dataclass(frozen=True)
class SaeBlock:
    """One SAE basis's side of the study."""

    groups: dict[str, list[int]]
    """Latents of each label group."""
    values: dict[str, dict[str, list[float]]]
    """Per band and group: the change at each reaching seed's matched checkpoint."""
    estimates: dict[str, dict[str, Estimate]]
    noise_floor: dict[str, float]
    cosine: dict[str, float]
    """Cosine of the bands' mean whole-dictionary change vectors, per band pair."""
    fve: dict[str, float]
    """Reconstruction quality per checkpoint."""
    labels: dict[str, dict]
    """Per label: size, causal check result."""


def sae_block(readings, name: str, feats: dict, m: Matching, seeds: Sequence[int], labels: dict) -> SaeBlock:
    """Per band: matched-gain group change with CIs; noise floor; cosine between bands."""
    groups = {g: feats["groups"][g] for g in GROUPS}
    values = matched_changes(readings, name, groups, m, seeds)
    base = readings["base"][name]["means"][VIEWS[0]]
    live = base > 0
    vectors = {}
    for band in BANDS:
        names = [run_name(band, s) for s in seeds if m.points[run_name(band, s)].reached]
        vs = [change_vector(readings[f"{n}/{checkpoint_name(m.points[n].step)}"][name]["means"][VIEWS[0]], base, live) for n in names]
        vectors[band] = sum(vs) / len(vs) if vs else None
    cos = {f"{a}~{b}": cosine(vectors[a], vectors[b]) for a, b in (("easy", "medium"), ("medium", "hard"), ("easy", "hard"))
           if vectors[a] is not None and vectors[b] is not None}  # fmt: skip
    fve = {ckpt: r[name]["fve"] for ckpt, r in readings.items()}
    return SaeBlock(groups, values, estimates(values), floors(values, GROUPS), cos, fve, labels)


@dataclasses.dataclass(frozen=True)
class BandResult:
    """One band's numbers over its seeds."""

    gain: Estimate
    """Final gain in the matched metric over the base model."""
    matched_step: list[int | None]
    """Per seed, the matched checkpoint's step (None: never reached)."""
    matched_gain: list[float | None]
    """Per seed, the actual gain at the matched checkpoint."""
    matched_hit: list[bool]
    """Per seed, whether the matched gain lies within the tolerance of the target (only these enter contrasts)."""
    behaviour: dict[str, dict[str, float]]
    """Eval-set behaviour rates at the first and last evaluation, mean over seeds."""
    feature_change: dict[str, Estimate]
    """Headline SAE: each group's change at the matched checkpoints (seeds that hit the target)."""
    feature_change_by_sae: dict[str, dict[str, Estimate]]
    gain_share: dict[str, dict[str, Estimate]]
    """Headline SAE, per group: share of the gain carried, the same for a matched random group, and
    the share the group brings to the base model (reverse patch), over the seeds that hit the target."""

    def to_json(self) -> dict:
        return {
            "gain": self.gain.as_dict(), "matched_step": self.matched_step, "matched_gain": self.matched_gain,
            "matched_hit": self.matched_hit, "behaviour": self.behaviour,
            "feature_change": {g: e.as_dict() for g, e in self.feature_change.items()},
            "feature_change_by_sae": {s: {g: e.as_dict() for g, e in v.items()} for s, v in self.feature_change_by_sae.items()},
            "gain_share": {g: {k: e.as_dict() for k, e in v.items()} for g, v in self.gain_share.items()},
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict) -> BandResult:
        est = Estimate.from_dict
        nested = lambda x: {a: {b: est(e) for b, e in v.items()} for a, v in x.items()}  # noqa: E731
        return cls(est(d["gain"]), d["matched_step"], d["matched_gain"], d["matched_hit"], d["behaviour"],
                   {g: est(e) for g, e in d["feature_change"].items()}, nested(d["feature_change_by_sae"]),
                   nested(d["gain_share"]))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class BandStudyResult:
    """results.json: the headline numbers of a band study."""

    preset: str
    seeds: list[int]
    bands: dict[str, BandResult]
    matched_key: str
    """Eval metric whose gain over the base model is matched."""
    matched_gain_target: float
    matched_tol: float
    """A matched gain hits the target when it lies within this of it (one SE of a gain by default)."""
    gain_se: float
    """Typical standard error of one measured gain."""
    diff_view: str
    """The token view the feature changes and contrasts are read on."""
    loss_agg: str
    """GRPO loss aggregation of the band runs."""
    noise_floor: dict[str, float]
    """Headline SAE: per group, mean |difference| between seeds of one band."""
    noise_floor_by_sae: dict[str, dict[str, float]]
    cosine_by_sae: dict[str, dict[str, float]]
    labels_by_sae: dict[str, dict[str, dict]]
    headline_sae: str
    contrasts: list[dict]
    """The verdict's family: every group x band-pair permutation test of the share of the gain carried
    (main contrast first) with its decision."""
    feature_contrasts: list[dict]
    """A secondary family, not in the verdict: the same tests on the change in group activity."""
    verdict_class: str
    """no_target, untestable, no_difference or differs."""
    verdict: str
    """One sentence computed from the numbers above."""
    hard_success_activity: dict = dataclasses.field(default_factory=dict)
    """Per checkpoint step of the hard-band runs: success rate and the deliberation group's activity on
    successful and failed rollouts, with the gap (``experiments.analysis.activity_results``)."""
    model_diffing: dict = dataclasses.field(default_factory=dict)
    """Per band: crosscoder and difference-SAE readings of its claim checkpoints beside the base SAE's,
    with faithfulness per dictionary and checkpoint (``experiments.analysis.diffing_results``)."""

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**d, "bands": {b: r.to_json() for b, r in self.bands.items()}}

    @classmethod
    def from_json(cls, d: dict) -> BandStudyResult:
        fields = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}  # a missing required one still fails
        return cls(**{**fields, "bands": {b: BandResult.from_json(r) for b, r in d["bands"].items()}})


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """The band study's settings the analysis uses."""

    preset: str
    seeds: tuple[int, ...]
    matched_key: str
    target_gain: float | None
    matched_tol: float | None
    loss_agg: str


@dataclasses.dataclass(frozen=True)
class BandAnalysis:
    """The result plus what the report draws from."""

    result: BandStudyResult
    metrics: dict[str, list[dict]]
    replayed: dict[str, dict[int, float]]
    """Per run, gains measured at replayed steps (drawn with the evaluations)."""
    matching: Matching
    plan: MatchPlan
    blocks: dict[str, SaeBlock]
    readings: dict[str, dict]


@dataclasses.dataclass(frozen=True)
class RunData:
    """What the band runs left: metrics logs, checkpoint steps, and gains measured in between."""

    metrics: dict[str, list[dict]]
    ckpt_steps: dict[str, set[int]]
    extra: dict[str, dict[int, float]]
    """Per run, gains at replayed steps (match.jsonl)."""


def planned(runs: RunData, s: StudySettings) -> tuple[dict[str, GainCurve], MatchPlan]:
    """Each run's gain curve at its stored checkpoints, and where all runs are matched (the match
    stage and the analysis both use this, so the replayed steps serve exactly this target)."""
    curve_by_run = curves(runs.metrics, runs.ckpt_steps, s.matched_key)
    return curve_by_run, plan(curve_by_run, gain_se(runs.metrics, s.matched_key), s.target_gain, s.matched_tol)


def analyse(
    settings: StudySettings,
    runs: RunData,
    features: dict[str, dict],
    labels: dict[str, dict],
    readings: dict[str, dict],
    attributions: Mapping[str, Mapping],
    activity: Mapping[str, Mapping] | None = None,
    model_diffing: dict | None = None,
) -> BandAnalysis:
    """Every number of the band study from the band runs, the labels and the diff readings."""
    s = settings
    curve_by_run, p = planned(runs, s)
    m = matching(curve_by_run, runs.extra, p)
    blocks = {name: sae_block(readings, name, feats, m, s.seeds, labels[name]) for name, feats in features.items()}
    shares = fraction_values(attributions, s.seeds)
    share_est = fraction_estimates(shares)
    head_name = next(iter(blocks))
    head = blocks[head_name]
    bands = {}
    for band in BANDS:
        names = [run_name(band, seed) for seed in s.seeds]
        beh = [behaviour(runs.metrics[n]) for n in names]
        bands[band] = BandResult(
            gain=bootstrap_mean([final_gain(runs.metrics[n], s.matched_key) for n in names]),
            matched_step=[m.points[n].step for n in names],
            matched_gain=[m.points[n].gain for n in names],
            matched_hit=[m.points[n].within_tol for n in names],
            behaviour={b: {k: float(sum(x[b][k] for x in beh) / len(beh)) for k in ("start", "end")} for b in BEHAVIOURS},
            feature_change={g: head.estimates[band][g] for g in GROUPS},
            feature_change_by_sae={n: {g: blk.estimates[band][g] for g in GROUPS} for n, blk in blocks.items()},
            gain_share=share_est[band],
        )
    labelled = {g: bool(head.groups[g]) for g in GROUPS}
    tests = contrasts(carried(shares), labelled)
    n_hit = {b: sum(bands[b].matched_hit) for b in BANDS}
    causal = {g: lab["passed"] for g, lab in head.labels.items()}
    vclass, sentence = verdict(p.target, p.tol, p.noise_ok, n_hit, len(s.seeds), tests, causal, labelled, MEASURE)
    res = BandStudyResult(
        s.preset, list(s.seeds), bands, s.matched_key, p.target, p.tol, p.se_gain, VIEWS[0], s.loss_agg,
        head.noise_floor, {n: blk.noise_floor for n, blk in blocks.items()}, {n: blk.cosine for n, blk in blocks.items()},
        {n: blk.labels for n, blk in blocks.items()}, head_name, [dataclasses.asdict(c) for c in tests],
        [dataclasses.asdict(c) for c in contrasts(head.values, labelled)], vclass, sentence,
        success_gap(activity or {}), model_diffing or {},
    )  # fmt: skip
    return BandAnalysis(res, runs.metrics, runs.extra, m, p, blocks, readings)


def diff_record(analysis: BandAnalysis) -> dict:
    """diff.json: per SAE and checkpoint, transfer quality and each group's change vs base, in both views."""
    return {
        name: {ckpt: {"fve": r[name]["fve"], "l0": r[name]["l0"],
                      **{f"change/{view}": group_changes(analysis.readings, name, blk.groups, ckpt, view) for view in VIEWS}}
               for ckpt, r in analysis.readings.items()}
        for name, blk in analysis.blocks.items()
    }  # fmt: skip
