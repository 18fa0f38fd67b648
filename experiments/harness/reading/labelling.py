"""Feature groups of an SAE, selected by attribution and checked causally: the one label-and-check pipeline.

1. **Select** on a labelling split of problems: every latent's attribution to each group's read-out
   (``experiments.harness.reading.feature_groups``: shortcut, computation, deliberation, mode;
   ``experiments.harness.reading.readouts``) on teacher-forced canonical completions; a live latent joins
   the read-out it serves most, and each group is the smallest set covering ``share`` of its
   read-out's positive attribution (``probes.attribution.select_groups``).
2. **Confirm** on a disjoint test split: the group's share of attribution there against random
   groups matched in firing rate and activation mass, and a linear probe over the group's codes
   against the same probe trained on shuffled labels (``probes.linear_probe``).
3. **Check causally** on the test split, which no SAE and no selection saw: ablate the group at
   the hook (its decoder contribution removed, the SAE's error term kept) and compare with
   ``n_random`` matched random groups (``probes.causal.check``), as a double dissociation:

   * shortcut     -> forced-direct accuracy where direct answers work (k <= shortcut_k) drops,
                     more than forced-deliberate accuracy on the same problems;
   * deliberation -> forced-deliberate accuracy drops, more than forced-direct accuracy, where only
                     a trace solves the problem (k > shortcut_k; a one-step trace is at its ceiling and
                     direct answers work there too), or on every problem when the shortcut works on all;
   * computation  -> the share of trace steps written right drops;
   * mode         -> the mean P(<think>) at the decision row moves (either way).

   Each check reads only the behaviours it needs on its own problems (``CHECKED_ON``).

Works on any sae_lens-format SAE and any HF checkpoint of the architecture it was trained on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from experiments.harness import seeds
from experiments.harness.reading.feature_groups import BY_NAME, FEATURE_GROUPS, NAMES
from experiments.harness.reading.readouts import task_readouts
from experiments.harness.reading.sources import Source
from experiments.harness.rundir import finite_or_none
from experiments.harness.tasks.family import PAD, Problem, Task
from experiments.harness.training.rollout import behaviour_table
from probes.attribution import Attribution, attribute, group_share, positive_share, select_groups
from probes.causal import Expectation, ablation_hook, check, matched_random_groups
from probes.features import feature_stats
from probes.linear_probe import probe

EXPECTATIONS: dict[str, Expectation] = {
    g.name: Expectation(g.behaviour, g.sign, off_target=g.off_target) for g in FEATURE_GROUPS
}
"""Per group: the behaviour its ablation must move, the expected direction, and the dissociation (from the registry)."""
CHECKED_ON: dict[str, str] = {g.name: g.checked_on for g in FEATURE_GROUPS}
"""Per group: the test problems its check reads (fixed before any result of this rule): where a direct answer can
work (k <= shortcut_k), where only a trace can (k > shortcut_k; every problem when there is none), or all."""
UNLABELLED = "unlabelled"
MAX_DRAWS = 20
"""Draws per wanted problem when looking for distinct chains no SAE saw (k = 1 has only p^2 |ops| chains)."""


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """How groups are selected and checked (fixed before any result was seen)."""

    share: float = 0.5
    """Share of a read-out's positive attribution (labelling split) its group must cover."""
    max_group: int = 64
    """Largest group."""
    n_random: int = 20
    """Matched random groups per check (beating all 20 has chance 1/21 under exchangeability)."""
    shortcut_k: int = 1
    """Largest knob at which a direct answer solves problems (the task's ``shortcut_k``; shortcut read-outs and direct
    accuracy are read up to it)."""
    seed: int = 0
    """Seeds the random groups, the shuffled probe labels and the bootstraps."""

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1 or self.max_group < 1 or self.n_random < 1 or self.shortcut_k < 1:
            raise ValueError(f"LabelSpec: out of range: {self}")


def split_problems(
    seed: int, ks: Sequence[int], per_k: int | Mapping[int, int], task: Task, seen: Sequence[Problem] = ()
) -> tuple[list[Problem], list[Problem]]:
    """(labelling split, test split) from the causal stream: per k, the first ``per_k`` (an int, or a count per
    k) distinct chains are the test split (the causal checks' problems) and the next as many the labelling split.
    Chains in ``seen`` (what the SAE was trained on) are skipped: where the problem space is small
    (k = 1) streams overlap, and the checks must run on problems no SAE saw. Where the space runs out, the
    test split keeps its share first."""
    known = {pr.key for pr in seen}
    label, test = [], []
    for k in ks:
        n = per_k if isinstance(per_k, int) else per_k[k]
        kept: dict[tuple, Problem] = {}
        for pr in seeds.problems("causal", seed, k, MAX_DRAWS * n, task):
            if len(kept) == 2 * n:
                break
            if pr.key not in known:
                kept.setdefault(pr.key, pr)
        chosen = list(kept.values())
        test += chosen[:n]
        label += chosen[n : 2 * n]
    return label, test


@dataclasses.dataclass(frozen=True)
class Split:
    """One split's read-outs and their attributions, per kind."""

    n_problems: int
    labels: dict[str, np.ndarray]
    """Per kind: the probe's class per read-out row (the mode logit's sign for 'mode')."""
    attributions: dict[str, Attribution]

    def mean_attr(self, kind: str) -> np.ndarray:
        """Mean attribution per problem of every latent to the kind's read-outs."""
        return self.attributions[kind].attr_SF.sum(0) / max(self.n_problems, 1)


def read_split(sae, src: Source, hook: str, problems: Sequence[Problem], shortcut_k: int) -> Split:
    vocab = src.tokenizer.get_vocab()
    attributions, labels = {}, {}
    for kind, ro in task_readouts(vocab, problems, shortcut_k).items():
        attributions[kind] = a = attribute(src.bridge, sae, hook, ro, vocab[PAD])
        labels[kind] = (a.value_R > 0).astype(np.int64) if kind == "mode" else ro.label_R
    return Split(len(problems), labels, attributions)


def confirm(kind: str, group: list[int], label: Split, test: Split, randoms: list[list[int]], seed: int) -> dict:
    """Out-of-split evidence for one group: attribution share and probe accuracy, with their controls."""
    ro = BY_NAME[kind].readout
    attr_F = test.mean_attr(ro)
    rand = [group_share(attr_F, g) for g in randoms]
    share = group_share(attr_F, group)
    codes = lambda split: split.attributions[ro].codes_RF[:, group]  # noqa: E731
    res = probe(codes(label), label.labels[ro], codes(test), test.labels[ro], seed)
    return {
        "test_share": share,
        "random_share_mean": float(np.mean(rand)) if rand else None,
        "share_percentile": float(np.mean([r < share for r in rand])) if rand else None,
        "probe": dataclasses.asdict(res),
    }


def checked_on(kind: str, problems: Sequence[Problem], shortcut_k: int) -> np.ndarray:
    """Indices of the test problems the kind's check reads (``CHECKED_ON``)."""
    direct_works = np.array([pr.k <= shortcut_k for pr in problems], bool)
    where = CHECKED_ON[kind]
    if where == "trace only" and direct_works.all():
        where = "all"
    keep = {"direct works": direct_works, "trace only": ~direct_works}.get(where, np.ones(len(problems), bool))
    return np.flatnonzero(keep)


def needed(kind: str) -> tuple[str, ...]:
    """The behaviours a kind's check reads: its own and its off-target one."""
    e = EXPECTATIONS[kind]
    return (e.behaviour,) + ((e.off_target,) if e.off_target else ())


def causal_check(
    sae, src: Source, hook: str, kind: str, group: list[int], randoms: list[list[int]], problems, spec: LabelSpec
) -> dict:
    """Ablate the group and each random group on the kind's problems; the check's record (``probes.causal.check``)."""
    chosen = [problems[i] for i in checked_on(kind, problems, spec.shortcut_k)]
    table = lambda hooks: behaviour_table(src.bridge, src.tokenizer, chosen, hooks, needed(kind))  # noqa: E731
    ablate = lambda g: table([(hook, ablation_hook(sae, g))])  # noqa: E731
    res = check(EXPECTATIONS[kind], table(()), ablate(group), [ablate(g) for g in randoms], spec.seed)
    return {"group": group, "random_groups": randoms, "problems": len(chosen), **dataclasses.asdict(res)}


def selected(sae, src: Source, label: Split, spec: LabelSpec):
    """(latent stats, groups selected on the labelling split's attributions, each group's matched random groups)."""
    stats = feature_stats(sae, src.cache, rows=np.arange(src.cache.n_tokens))
    live_F = stats.fire_rate_F > 0
    attr = {g.name: label.mean_attr(g.readout) for g in FEATURE_GROUPS}
    groups = select_groups(attr, live_F, spec.share, spec.max_group)
    live = np.flatnonzero(live_F).tolist()
    randoms = {
        k: matched_random_groups(g, live, stats.fire_rate_F, stats.mean_F, spec.n_random, spec.seed)
        for k, g in groups.items()
        if g
    }
    return stats, groups, randoms


def labelling_checks(
    sae, src: Source, hook: str, label_problems: Sequence[Problem], kinds: Sequence[str], spec: LabelSpec
) -> dict:
    """The causal checks of ``kinds``' groups run on the labelling split itself (in sample): what a rule that picks
    among hooks may read without touching the test split. Per kind: passed, percentile and group size."""
    label = read_split(sae, src, hook, label_problems, spec.shortcut_k)
    _, groups, randoms = selected(sae, src, label, spec)
    out = {}
    for kind in kinds:
        c = (
            causal_check(sae, src, hook, kind, groups[kind], randoms[kind], label_problems, spec)
            if groups[kind]
            else None
        )
        out[kind] = {
            "n": len(groups[kind]),
            "passed": bool(c and c["passed"]),
            "percentile": c["percentile"] if c else 0.0,
        }
    return out


def label_and_check(
    sae,
    src: Source,
    hook: str,
    label_problems: Sequence[Problem],
    test_problems: Sequence[Problem],
    spec: LabelSpec,
    meta: dict,
) -> dict:
    """features.json content: groups selected on ``label_problems``, confirmed and causally checked on
    ``test_problems``."""
    label, test = (read_split(sae, src, hook, ps, spec.shortcut_k) for ps in (label_problems, test_problems))
    stats, groups, randoms = selected(sae, src, label, spec)
    selection = {
        k: {"n": len(g)} | (confirm(k, g, label, test, randoms[k], spec.seed) if g else {}) for k, g in groups.items()
    }
    clean = behaviour_table(src.bridge, src.tokenizer, test_problems)
    checks = {
        kind: causal_check(sae, src, hook, kind, g, randoms[kind], test_problems, spec)
        for kind, g in groups.items()
        if g
    }
    owner = {i: kind for kind, g in groups.items() for i in g}
    shares = {g.name: positive_share(label.mean_attr(g.readout)) for g in FEATURE_GROUPS}
    features = [
        {
            "latent": i,
            "label": owner.get(i, UNLABELLED),
            "evidence": stats.evidence(i) | {f"attr_share/{k}": float(shares[k][i]) for k in NAMES},
        }
        for i in range(stats.n_latents)
    ]
    return finite_or_none(
        {
            "meta": dict(meta),
            "spec": dataclasses.asdict(spec),
            "counts": {k: len(g) for k, g in groups.items()},
            "groups": groups,
            "selection": selection,
            "causal": {
                "problems": len(test_problems),
                "clean": {b: float(np.mean(v)) for b, v in clean.items()},
                "checks": checks,
            },
            "features": features,
        }
    )


def summary(features: dict) -> dict[str, dict]:
    """Per group: size, whether its check passed, the named effect and the random effects."""
    out = {}
    for kind in NAMES:
        c = features["causal"]["checks"].get(kind)
        out[kind] = {"n": features["counts"][kind], "passed": None if c is None else c["passed"]}
        if c:
            out[kind] |= {
                "metric": c["behaviour"],
                "effect": c["effect"]["mean"],
                "ci95": c["effect"]["ci95"],
                "percentile": c["percentile"],
                "random_effects": c["random_effects"],
                "dissociation": c["dissociation"],
                "probe": features["selection"][kind]["probe"],
                "test_share": features["selection"][kind]["test_share"],
                "random_share_mean": features["selection"][kind]["random_share_mean"],
            }
    return out
