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
from experiments.analysis.contrasts import MIN_SEEDS, ContrastResult, contrasts, verdict
from experiments.analysis.gain_results import MEASURE, fraction_estimates, fraction_values, specific
from experiments.harness.reading.feature_groups import CONTRASTED
from probes.bands import BANDS
from probes.diff import VIEWS, change_vector, group_activity, matched_values, relative_change
from probes.layout import band_of_run, point_name, run_name
from probes.matched_gain import (
    GainCurve,
    MatchedPoint,
    Matching,
    common_target,
    first_reaching,
    gain_curve,
    with_points,
)
from probes.stats import Estimate, cosine, noise_floor, t_mean

BEHAVIOURS = (
    "deliberate_rate",
    "direct_rate",
    "format_error_rate",
    "skipped_step_rate",
    "wrong_step_rate",
    "copied_answer_rate",
    "lucky_success_rate",
    "mean_length",
    "trace_length",
)


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
    reach: dict[str, float]
    """Per band: the largest gain all but one of its seeds (at least MIN_SEEDS) reach at a stored checkpoint."""
    matchable: tuple[str, ...]
    """Bands whose reach is at least MIN_TARGET_SE standard errors: the target is the smallest of their reaches."""


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
    """Target and tolerance. The default target is the largest gain that all but one seed (at least MIN_SEEDS) of
    every matchable band reach at a stored checkpoint, a band being matchable when that many of its seeds gain
    MIN_TARGET_SE standard errors (``probes.matched_gain.common_target``); a band that never gets that far, or
    a seed that never reaches the target, is reported as not reaching it."""
    floor = MIN_TARGET_SE * se_gain
    common = common_target(curve_by_run, {name: band_of_run(name) for name in curve_by_run}, floor, MIN_SEEDS)
    goal = common.gain if target is None else target
    tol = se_gain if tol is None else tol
    return MatchPlan(goal, tol, se_gain, bool(goal >= floor), common.reach, common.matchable)


def matching(
    curve_by_run: Mapping[str, GainCurve], extra: Mapping[str, Mapping[float, float]], p: MatchPlan
) -> Matching:
    """Each run's matched point on its curve plus the steps measured in between (``extra``)."""
    points = {n: first_reaching(with_points(c, extra.get(n, {})), p.target, p.tol) for n, c in curve_by_run.items()}
    return Matching(p.target, points)


def final_gain(rows: Sequence[dict], key: str) -> float:
    evaluated = [r for r in rows if key in r]
    return evaluated[-1][key] - evaluated[0][key]


def behaviour(rows: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Eval-set behaviour rates at the first and the last evaluation."""
    evaluated = [r for r in rows if "eval/behaviour/deliberate_rate" in r]
    return {
        b: {"start": evaluated[0][f"eval/behaviour/{b}"], "end": evaluated[-1][f"eval/behaviour/{b}"]}
        for b in BEHAVIOURS
    }


def group_changes(
    readings: Mapping[str, dict], sae: str, groups: Mapping[str, Sequence[int]], ckpt: str, view: str = VIEWS[0]
) -> dict[str, float]:
    """Relative change of each group's activity at ``ckpt`` vs the base model."""
    base = group_activity(readings["base"][sae]["means"][view], groups)
    return relative_change(group_activity(readings[ckpt][sae]["means"][view], groups), base)


def matched_changes(readings, sae: str, groups, m: Matching, seeds: Sequence[int]) -> dict[str, dict[str, list[float]]]:
    """Per band and group: the change at each seed's matched checkpoint (seeds that hit the target)."""
    points = {run_name(b, s): hit(m.points[run_name(b, s)]) for b in BANDS for s in seeds}
    ckpts = [f"{n}/{point_name(p.step)}" for n, p in points.items() if p.reached]
    changes = {c: group_changes(readings, sae, groups, c) for c in ckpts}
    return matched_values(changes, points, list(groups))


def changes_at_step(readings, sae: str, groups, step: int, seeds: Sequence[int]) -> dict[str, dict[str, list[float]]]:
    """Per band and group: every seed's change after ``step`` updates (the step-matched reading)."""
    at = {run_name(b, s): f"{run_name(b, s)}/{point_name(step)}" for b in BANDS for s in seeds}
    points = {
        n: MatchedPoint(c in readings, step, None, math.nan, c in readings) for n, c in at.items()
    }  # ingested: other steps
    changes = {c: group_changes(readings, sae, groups, c) for c in at.values() if c in readings}
    return matched_values(changes, points, list(groups))


def estimates(values: Mapping[str, Mapping[str, list[float]]]) -> dict[str, dict[str, Estimate]]:
    return {band: {g: t_mean(v) for g, v in per_group.items()} for band, per_group in values.items()}


def floors(values: Mapping[str, Mapping[str, list[float]]], groups: Sequence[str]) -> dict[str, float]:
    """Per group: mean |difference| between seeds of the same band (pooled over bands)."""
    return {g: noise_floor([values[b][g] for b in values]) for g in groups}


def hit(point: MatchedPoint) -> MatchedPoint:
    """The point as counted in contrasts: reached only when its gain is within the tolerance."""
    return point if point.within_tol else dataclasses.replace(point, reached=False)


def group_issues(labels: Mapping[str, dict]) -> dict[str, str | None]:
    """Why each contrasted group cannot enter a contrast (decided before any matched result): an empty group, or
    one whose causal check failed, names no confirmed behaviour, so its contrasts are skipped."""
    issue = lambda lab: "is empty" if not lab["n"] else ("failed its causal check" if not lab["passed"] else None)  # noqa: E731
    return {g: issue(labels[g]) for g in CONTRASTED}


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
    groups = {g: feats["groups"][g] for g in CONTRASTED}
    values = matched_changes(readings, name, groups, m, seeds)
    base = readings["base"][name]["means"][VIEWS[0]]
    live = base > 0
    vectors = {}
    for band in BANDS:
        names = [run_name(band, s) for s in seeds if hit(m.points[run_name(band, s)]).reached]
        vs = [
            change_vector(readings[f"{n}/{point_name(m.points[n].step)}"][name]["means"][VIEWS[0]], base, live)
            for n in names
        ]
        vectors[band] = sum(vs) / len(vs) if vs else None
    cos = {
        f"{a}~{b}": cosine(vectors[a], vectors[b])
        for a, b in (("easy", "medium"), ("medium", "hard"), ("easy", "hard"))
        if vectors[a] is not None and vectors[b] is not None
    }
    fve = {ckpt: r[name]["fve"] for ckpt, r in readings.items()}
    return SaeBlock(groups, values, estimates(values), floors(values, CONTRASTED), cos, fve, labels)


@dataclasses.dataclass(frozen=True)
class BandResult:
    """One band's numbers over its seeds."""

    gain: Estimate
    """Final gain in the matched metric over the base model."""
    matched_step: list[float | None]
    """Per seed, the matched point's step (fractional: a blend inside one update; None: never reached)."""
    matched_gain: list[float | None]
    """Per seed, the actual gain at the matched point."""
    matched_hit: list[bool]
    """Per seed, whether the matched gain lies within the tolerance of the target (only these enter contrasts)."""
    matched_kl: list[float | None]
    """Per seed, the matched model's KL to the base model (per completion token, on its own eval samples)."""
    matched_deliberate_rate: list[float | None]
    """Per seed, the share of the matched model's eval samples that deliberate."""
    behaviour: dict[str, dict[str, float]]
    """Eval-set behaviour rates at the first and last evaluation, mean over seeds."""
    feature_change: dict[str, Estimate]
    """Headline SAE: each group's change at the matched checkpoints (seeds that hit the target)."""
    feature_change_by_sae: dict[str, dict[str, Estimate]]
    gain_share: dict[str, dict[str, Estimate]]
    """Headline SAE, per group: share of the gain carried, the mean share of its matched random groups, their
    difference (specific), over the hitting seeds."""
    at_final_step: dict[str, Estimate]
    """Step-matched reading (every band after the same updates, the last): each group's activity change, all seeds."""

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        nested = lambda x: {a: {b: e.as_dict() for b, e in v.items()} for a, v in x.items()}  # noqa: E731
        return {
            **d,
            "gain": self.gain.as_dict(),
            "feature_change": {g: e.as_dict() for g, e in self.feature_change.items()},
            "feature_change_by_sae": nested(self.feature_change_by_sae),
            "gain_share": nested(self.gain_share),
            "at_final_step": {g: e.as_dict() for g, e in self.at_final_step.items()},
        }

    @classmethod
    def from_json(cls, d: dict) -> BandResult:
        est = Estimate.from_dict
        nested = lambda x: {a: {b: est(e) for b, e in v.items()} for a, v in x.items()}  # noqa: E731
        flat = lambda x: {g: est(e) for g, e in x.items()}  # noqa: E731
        return cls(
            **{
                **d,
                "gain": est(d["gain"]),
                "feature_change": flat(d["feature_change"]),
                "feature_change_by_sae": nested(d["feature_change_by_sae"]),
                "gain_share": nested(d["gain_share"]),
                "at_final_step": flat(d["at_final_step"]),
            }
        )


@dataclasses.dataclass(frozen=True)
class BandDiffing:
    """One band's model diffing in results.json: its claim checkpoints, each change dictionary's summary, the three
    readings side by side and the faithfulness table."""

    claim: str
    """matched (every run of the band hit the target: its matched points) or final (the last step: equal budget)."""
    steps: dict[str, float]
    """Per run diffed, its claim checkpoint's step (fractional at a sub-step matched point)."""
    n_rollouts: int
    """Rollouts per held-out problem behind each spliced accuracy and causal effect."""
    crosscoder: dict
    """The crosscoder's summary: its band's latents, labels, effects (steer base, ablate tuned) and norm classes."""
    difference: dict
    """The difference SAE's summary, the same way."""
    readings: dict
    """The three readings (base SAE, crosscoder, difference SAE) per group, each's top group, and whether they agree."""
    faithfulness: list[dict]
    """Per seed, dictionary and model: FVE, L0, dead fraction, clean vs spliced accuracy and loss, and the flag."""
    removed: list[str]
    """Dictionaries unfaithful for the band (flagged on most of its spliced models): their readings are left out."""

    def dictionary(self, kind: str) -> dict:
        """The summary of one kind of change dictionary (``probes.saes.change.DICTIONARIES``)."""
        return {"crosscoder": self.crosscoder, "difference": self.difference}[kind]

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, d: Mapping) -> BandDiffing:
        return cls(**d)


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
    reach: dict[str, float]
    """Per band: the largest gain all but one of its seeds (at least 3) reach; the target is the smallest matchable
    one."""
    matchable_bands: list[str]
    """Bands whose reach is at least 3 standard errors of a gain."""
    diff_view: str
    """The token view the feature changes and contrasts are read on."""
    loss_agg: str
    """GRPO loss aggregation of the band runs."""
    final_step: int
    """The budget every run had; the step-matched reading is taken there."""
    noise_floor: dict[str, float]
    """Headline SAE: per group, mean |difference| between seeds of one band."""
    noise_floor_by_sae: dict[str, dict[str, float]]
    cosine_by_sae: dict[str, dict[str, float]]
    labels_by_sae: dict[str, dict[str, dict]]
    headline_sae: str
    contrasts: list[dict]
    """The verdict's family: every group x band-pair permutation test of the specific share of the gain carried,
    the registered sequence first, with its status and decision."""
    feature_contrasts: list[dict]
    """A secondary family, not in the verdict: the same tests on the change in group activity at matched gain."""
    step_contrasts: list[dict]
    """Another, not in the verdict: the same tests on the change in group activity at the final step (step-matched)."""
    gain_check: dict[str, dict]
    """Per attributed run: the matched gain, the gain measured through the patching path on the same draws, and
    whether they agree within the tolerance."""
    verdict_class: str
    """no_target, untestable, no_difference or differs."""
    verdict: str
    """One sentence computed from the numbers above."""
    hard_success_activity: dict = dataclasses.field(default_factory=dict)
    """Per checkpoint step of the hard-band runs: success rate and the deliberation group's activity on
    successful and failed rollouts, with the gap (``experiments.analysis.activity_results``)."""
    model_diffing: dict[str, BandDiffing] = dataclasses.field(default_factory=dict)
    """Per band: crosscoder and difference-SAE readings of its claim checkpoints beside the base SAE's,
    with faithfulness per dictionary and checkpoint (``experiments.analysis.model_diffing_results``)."""
    hook_choice: dict = dataclasses.field(default_factory=dict)
    """The hook the SAEs read and, where the labelling-split rule chose it, every candidate's scores (empty: given)."""

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        md = {b: r.to_json() for b, r in self.model_diffing.items()}
        return {**d, "bands": {b: r.to_json() for b, r in self.bands.items()}, "model_diffing": md}

    @classmethod
    def from_json(cls, d: dict) -> BandStudyResult:
        fields = {
            f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d
        }  # a missing required one still fails
        md = {b: BandDiffing.from_json(r) for b, r in d.get("model_diffing", {}).items()}
        return cls(
            **{**fields, "bands": {b: BandResult.from_json(r) for b, r in d["bands"].items()}, "model_diffing": md}
        )


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """The band study's settings the analysis uses."""

    preset: str
    seeds: tuple[int, ...]
    matched_key: str
    target_gain: float | None
    matched_tol: float | None
    loss_agg: str
    final_step: int


@dataclasses.dataclass(frozen=True)
class BandAnalysis:
    """The result plus what the report draws from."""

    result: BandStudyResult
    metrics: dict[str, list[dict]]
    replayed: dict[str, dict[float, float]]
    """Per run, gains measured at replayed or blended steps (drawn with the evaluations)."""
    matching: Matching
    plan: MatchPlan
    blocks: dict[str, SaeBlock]
    readings: dict[str, dict]


@dataclasses.dataclass(frozen=True)
class RunData:
    """What the band runs left: metrics logs, checkpoint steps, and evaluations made while matching."""

    metrics: dict[str, list[dict]]
    ckpt_steps: dict[str, set[int]]
    measured: dict[str, list[dict]]
    """Per run, evaluations at replayed or blended steps (match.jsonl)."""
    key: str
    """The matched metric."""

    @property
    def extra(self) -> dict[str, dict[float, float]]:
        """Per run, gains at the steps measured while matching."""
        return {
            n: {r["step"]: r[self.key] - self.metrics[n][0][self.key] for r in rows}
            for n, rows in self.measured.items()
        }

    def row_at(self, name: str, step: float) -> dict:
        """The evaluation of run ``name`` after ``step`` updates (its metrics line or a matching one)."""
        rows = [r for r in (*self.metrics[name], *self.measured[name]) if r["step"] == step and self.key in r]
        return rows[0] if rows else {}


def planned(runs: RunData, s: StudySettings) -> tuple[dict[str, GainCurve], MatchPlan]:
    """Each run's gain curve at its stored checkpoints, and where all runs are matched (the match
    stage and the analysis both use this, so the replayed steps serve exactly this target)."""
    curve_by_run = curves(runs.metrics, runs.ckpt_steps, s.matched_key)
    return curve_by_run, plan(curve_by_run, gain_se(runs.metrics, s.matched_key), s.target_gain, s.matched_tol)


def gain_check(attributions: Mapping[str, Mapping], tol: float) -> dict[str, dict]:
    """Per attributed run: its matched gain, the gain measured again on the same draws for attribution, whether
    they agree within the tolerance, and how often the patching path with nothing patched gives the model's own
    outcome."""
    out = {}
    for name, rec in attributions.items():
        matched, again = rec["matched_acc"] - rec["acc_base"], rec["acc_tuned"] - rec["acc_base"]
        out[name] = {
            "matched": matched,
            "measured_again": again,
            "agree": abs(matched - again) <= tol,
            "path_agreement": rec["path_agreement"],
        }
    return out


def band_result(
    runs: RunData,
    s: StudySettings,
    m: Matching,
    blocks: dict[str, SaeBlock],
    head: str,
    band: str,
    share_est: dict,
    readings,
) -> BandResult:
    names = [run_name(band, seed) for seed in s.seeds]
    beh = [behaviour(runs.metrics[n]) for n in names]
    at_point = [runs.row_at(n, m.points[n].step) if m.points[n].reached else {} for n in names]
    final = changes_at_step(readings, head, blocks[head].groups, s.final_step, s.seeds)[band]
    return BandResult(
        gain=t_mean([final_gain(runs.metrics[n], s.matched_key) for n in names]),
        matched_step=[m.points[n].step for n in names],
        matched_gain=[m.points[n].gain for n in names],
        matched_hit=[m.points[n].within_tol for n in names],
        matched_kl=[r.get("eval/kl_to_base") for r in at_point],
        matched_deliberate_rate=[r.get("eval/behaviour/deliberate_rate") for r in at_point],
        behaviour={b: {k: float(sum(x[b][k] for x in beh) / len(beh)) for k in ("start", "end")} for b in BEHAVIOURS},
        feature_change={g: blocks[head].estimates[band][g] for g in CONTRASTED},
        feature_change_by_sae={n: {g: blk.estimates[band][g] for g in CONTRASTED} for n, blk in blocks.items()},
        gain_share=share_est[band],
        at_final_step={g: t_mean(v) for g, v in final.items()},
    )


def decide(
    attributions: Mapping[str, Mapping],
    seeds: Sequence[int],
    labels: Mapping[str, dict],
    n_hit: Mapping[str, int],
    p: MatchPlan,
) -> tuple[list[ContrastResult], str, str]:
    """The verdict's family (specific shares of the hitting runs' attribution records, contrasted by serial
    gatekeeping) and its class and sentence: the one decision path, which the null simulations run too."""
    tests = contrasts(specific(fraction_values(attributions, seeds)), group_issues(labels))
    return (tests, *verdict(p.target, p.tol, p.noise_ok, n_hit, len(seeds), tests, MEASURE))


def analyse(
    settings: StudySettings,
    runs: RunData,
    features: dict[str, dict],
    labels: dict[str, dict],
    readings: dict[str, dict],
    attributions: Mapping[str, Mapping],
    activity: Mapping[str, Mapping] | None = None,
    model_diffing: dict[str, BandDiffing] | None = None,
    hook_choice: dict | None = None,
) -> BandAnalysis:
    """Every number of the band study from the band runs, the labels and the diff readings."""
    s = settings
    curve_by_run, p = planned(runs, s)
    m = matching(curve_by_run, runs.extra, p)
    blocks = {name: sae_block(readings, name, feats, m, s.seeds, labels[name]) for name, feats in features.items()}
    shares = fraction_values(attributions, s.seeds)
    head_name = next(iter(blocks))
    head = blocks[head_name]
    share_est = fraction_estimates(shares)
    bands = {b: band_result(runs, s, m, blocks, head_name, b, share_est, readings) for b in BANDS}
    issues = group_issues(head.labels)
    tests, vclass, sentence = decide(
        attributions, s.seeds, head.labels, {b: sum(bands[b].matched_hit) for b in BANDS}, p
    )
    final = changes_at_step(readings, head_name, head.groups, s.final_step, s.seeds)
    res = BandStudyResult(
        s.preset,
        list(s.seeds),
        bands,
        s.matched_key,
        p.target,
        p.tol,
        p.se_gain,
        p.reach,
        list(p.matchable),
        VIEWS[0],
        s.loss_agg,
        s.final_step,
        head.noise_floor,
        {n: blk.noise_floor for n, blk in blocks.items()},
        {n: blk.cosine for n, blk in blocks.items()},
        {n: blk.labels for n, blk in blocks.items()},
        head_name,
        [dataclasses.asdict(c) for c in tests],
        [dataclasses.asdict(c) for c in contrasts(head.values, issues)],
        [dataclasses.asdict(c) for c in contrasts(final, issues)],
        gain_check(attributions, p.tol),
        vclass,
        sentence,
        success_gap(activity or {}),
        model_diffing or {},
        hook_choice or {},
    )
    return BandAnalysis(res, runs.metrics, runs.extra, m, p, blocks, readings)


def diff_record(analysis: BandAnalysis) -> dict:
    """diff.json: per SAE and checkpoint, transfer quality and each group's change vs base, in both views."""
    return {
        name: {
            ckpt: {
                "fve": r[name]["fve"],
                "l0": r[name]["l0"],
                **{f"change/{view}": group_changes(analysis.readings, name, blk.groups, ckpt, view) for view in VIEWS},
            }
            for ckpt, r in analysis.readings.items()
        }
        for name, blk in analysis.blocks.items()
    }
