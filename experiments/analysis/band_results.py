"""The band study's numbers: matched gain, feature change with CIs, noise floor, verdict.

Everything here is computed from the run directory's artifacts (metrics.jsonl, the diff
readings, features.json) into typed results; the verdict sentence is assembled from
those numbers. ``BandStudyResult`` is results.json; ``diff_record`` is diff.json.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from probes.bands import BANDS
from probes.diff import VIEWS, change_vector, group_activity, matched_values, relative_change
from probes.layout import run_name
from probes.matched_gain import Matching, gain_curve, match
from probes.stats import Estimate, bootstrap_mean, cosine, noise_floor

BEHAVIOURS = ("deliberate_rate", "direct_rate", "format_error_rate", "skipped_step_rate", "wrong_step_rate", "copied_answer_rate", "mean_length")
GROUPS = ("shortcut", "computation", "deliberation")


def matching(metrics: Mapping[str, list[dict]], ckpt_steps: Mapping[str, set[int]], key: str, target: float | None, tol: float) -> Matching:
    curves = {name: gain_curve(rows, key, steps=ckpt_steps[name]) for name, rows in metrics.items()}
    return match(curves, target, tol)


def final_gain(rows: Sequence[dict], key: str) -> float:
    evaluated = [r for r in rows if key in r]
    return evaluated[-1][key] - evaluated[0][key]


def behaviour(rows: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Eval-set behaviour rates at the first and the last evaluation."""
    evaluated = [r for r in rows if "eval/behaviour/deliberate_rate" in r]
    return {b: {"start": evaluated[0][f"eval/behaviour/{b}"], "end": evaluated[-1][f"eval/behaviour/{b}"]} for b in BEHAVIOURS}


def group_changes(readings: Mapping[str, dict], sae: str, groups: Mapping[str, Sequence[int]], ckpt: str, view: str = "sampled") -> dict[str, float]:
    """Relative change of each group's activity at ``ckpt`` vs the base model."""
    base = group_activity(readings["base"][sae]["means"][view], groups)
    return relative_change(group_activity(readings[ckpt][sae]["means"][view], groups), base)


def matched_changes(readings, sae: str, groups, m: Matching, seeds: Sequence[int]) -> dict[str, dict[str, list[float]]]:
    """Per band and group: the change at each seed's matched checkpoint (seeds that reached it)."""
    points = {run_name(b, s): m.points[run_name(b, s)] for b in BANDS for s in seeds}
    changes = {f"{n}/ckpt-{p.step}": group_changes(readings, sae, groups, f"{n}/ckpt-{p.step}") for n, p in points.items() if p.reached}
    return matched_values(changes, points, list(groups))


def estimates(values: Mapping[str, Mapping[str, list[float]]]) -> dict[str, dict[str, Estimate]]:
    return {band: {g: bootstrap_mean(v) for g, v in per_group.items()} for band, per_group in values.items()}


def floors(values: Mapping[str, Mapping[str, list[float]]], groups: Sequence[str]) -> dict[str, float]:
    """Per group: mean |difference| between seeds of the same band (pooled over bands)."""
    return {g: noise_floor([values[b][g] for b in values]) for g in groups}


def differs(a: Estimate, b: Estimate, floor: float) -> bool:
    """Two bands differ when the gap exceeds the noise floor and the CIs do not overlap."""
    if a.n == 0 or b.n == 0 or not np.isfinite(floor):
        return False
    gap = abs(a.mean - b.mean)
    return gap > floor and (a.ci95[1] < b.ci95[0] or b.ci95[1] < a.ci95[0])


def verdict(
    est: Mapping[str, Mapping[str, Estimate]],
    floor: Mapping[str, float],
    m: Matching,
    n_reached: Mapping[str, int],
    n_seeds: int,
    causal: Mapping[str, bool | None],
) -> str:
    """One sentence stating what the numbers show (computed, never hand-written).

    A group whose label failed (or lacked) its causal check is named with that caveat."""
    reached = ", ".join(f"{b} {n_reached[b]}/{n_seeds}" for b in BANDS)
    head = f"At a matched accuracy gain of {m.target:+.3f} (seeds reaching it: {reached})"
    if m.target <= 0:
        return f"{head}, some band never improved, so there is no positive gain to match at."
    found = []
    for g in GROUPS:
        for a, b in (("easy", "medium"), ("medium", "hard"), ("easy", "hard")):
            if g in est[a] and differs(est[a][g], est[b][g], floor[g]):
                caveat = "" if causal.get(g) else ", but that label failed its causal check"
                found.append(
                    f"{g} features changed {est[a][g].mean:+.2f} for {a} vs {est[b][g].mean:+.2f} for {b} "
                    f"(noise floor {floor[g]:.2f}{caveat})"
                )
    if not found:
        return f"{head}, no band differs from another in any labelled feature group beyond the seed noise floor."
    return f"{head}, " + "; ".join(found) + "."


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
        vs = [change_vector(readings[f"{n}/ckpt-{m.points[n].step}"][name]["means"][VIEWS[0]], base, live) for n in names]
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
    behaviour: dict[str, dict[str, float]]
    """Eval-set behaviour rates at the first and last evaluation, mean over seeds."""
    feature_change: dict[str, Estimate]
    """Headline SAE: each group's change at the matched checkpoints."""
    feature_change_by_sae: dict[str, dict[str, Estimate]]

    def to_json(self) -> dict:
        return {
            "gain": self.gain.as_dict(), "matched_step": self.matched_step, "matched_gain": self.matched_gain,
            "behaviour": self.behaviour, "feature_change": {g: e.as_dict() for g, e in self.feature_change.items()},
            "feature_change_by_sae": {s: {g: e.as_dict() for g, e in v.items()} for s, v in self.feature_change_by_sae.items()},
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict) -> BandResult:
        est = Estimate.from_dict
        return cls(est(d["gain"]), d["matched_step"], d["matched_gain"], d["behaviour"],
                   {g: est(e) for g, e in d["feature_change"].items()},
                   {s: {g: est(e) for g, e in v.items()} for s, v in d["feature_change_by_sae"].items()})  # fmt: skip


@dataclasses.dataclass(frozen=True)
class BandStudyResult:
    """results.json: the headline numbers of a band study."""

    preset: str
    seeds: list[int]
    bands: dict[str, BandResult]
    matched_key: str
    """Eval metric whose gain over the base model is matched."""
    matched_gain_target: float
    noise_floor: dict[str, float]
    """Headline SAE: per group, mean |difference| between seeds of one band."""
    noise_floor_by_sae: dict[str, dict[str, float]]
    cosine_by_sae: dict[str, dict[str, float]]
    labels_by_sae: dict[str, dict[str, dict]]
    headline_sae: str
    verdict: str
    """One sentence computed from the numbers above."""

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**d, "bands": {b: r.to_json() for b, r in self.bands.items()}}

    @classmethod
    def from_json(cls, d: dict) -> BandStudyResult:
        fields = {f.name: d[f.name] for f in dataclasses.fields(cls)}
        return cls(**{**fields, "bands": {b: BandResult.from_json(r) for b, r in d["bands"].items()}})


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """The band study's settings the analysis uses."""

    preset: str
    seeds: tuple[int, ...]
    matched_key: str
    target_gain: float | None
    matched_tol: float


@dataclasses.dataclass(frozen=True)
class BandAnalysis:
    """The result plus what the report draws from."""

    result: BandStudyResult
    metrics: dict[str, list[dict]]
    matching: Matching
    blocks: dict[str, SaeBlock]
    readings: dict[str, dict]


def analyse(
    settings: StudySettings, metrics: dict[str, list[dict]], ckpt_steps: Mapping[str, set[int]],
    features: dict[str, dict], labels: dict[str, dict], readings: dict[str, dict],
) -> BandAnalysis:  # fmt: skip
    """Every number of the band study from the band runs' metrics, the labels and the diff readings."""
    s = settings
    m = matching(metrics, ckpt_steps, s.matched_key, s.target_gain, s.matched_tol)
    blocks = {name: sae_block(readings, name, feats, m, s.seeds, labels[name]) for name, feats in features.items()}
    head_name = next(iter(blocks))
    head = blocks[head_name]
    n_reached = {b: sum(m.points[run_name(b, seed)].reached for seed in s.seeds) for b in BANDS}
    bands = {}
    for band in BANDS:
        names = [run_name(band, seed) for seed in s.seeds]
        beh = [behaviour(metrics[n]) for n in names]
        bands[band] = BandResult(
            gain=bootstrap_mean([final_gain(metrics[n], s.matched_key) for n in names]),
            matched_step=[m.points[n].step for n in names],
            matched_gain=[m.points[n].gain for n in names],
            behaviour={b: {k: float(sum(x[b][k] for x in beh) / len(beh)) for k in ("start", "end")} for b in BEHAVIOURS},
            feature_change={g: head.estimates[band][g] for g in GROUPS},
            feature_change_by_sae={n: {g: blk.estimates[band][g] for g in GROUPS} for n, blk in blocks.items()},
        )
    res = BandStudyResult(
        s.preset, list(s.seeds), bands, s.matched_key, m.target, head.noise_floor,
        {n: blk.noise_floor for n, blk in blocks.items()}, {n: blk.cosine for n, blk in blocks.items()},
        {n: blk.labels for n, blk in blocks.items()}, head_name,
        verdict(head.estimates, head.noise_floor, m, n_reached, len(s.seeds), {g: lab["passed"] for g, lab in head.labels.items()}),
    )  # fmt: skip
    return BandAnalysis(res, metrics, m, blocks, readings)


def diff_record(analysis: BandAnalysis) -> dict:
    """diff.json: per SAE and checkpoint, transfer quality and each group's change vs base, in both views."""
    return {
        name: {ckpt: {"fve": r[name]["fve"], "l0": r[name]["l0"],
                      **{f"change/{view}": group_changes(analysis.readings, name, blk.groups, ckpt, view) for view in VIEWS}}
               for ckpt, r in analysis.readings.items()}
        for name, blk in analysis.blocks.items()
    }  # fmt: skip
