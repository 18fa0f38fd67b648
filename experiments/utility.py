"""Utility-weighted training vs symmetric training with a post-hoc threshold: ``python -m experiments.utility --run runs/NAME``.

The decision: answer, or abstain (``abstain <eos>``). A right answer pays +1, a wrong one -3, an abstention 0
(``payoffs``), so answering pays only where P(right) >= 0.75. On a run pretrained with ``--abstain-frac`` (the
base model abstains at random, whatever the problem) whose bands are measured, GRPO on one band's pool with
several seeds, in two arms, everything else equal:

(a) direct: the utility itself is the reward (abstaining is learned);
(b) post hoc: the symmetric binary reward, then each sampled answer is kept only where the model's own
    probability of it (``experiments.harness.post_hoc.answer_probability``) reaches a threshold: 0.75 (right
    for a calibrated probability), or the one with the best utility on half the held-out problems (fitted per
    seed; every utility is measured on the other half).

Utility, answer rate and accuracy of the answers, in distribution (k within pretraining) and beyond, with
two-level bootstrap intervals (seeds, then problems; paired on problems). What the seed note says (a) loses,
feature acquisition: forced-deliberate greedy accuracy on the held-out problems, and a linear probe's accuracy
for the computation targets (running results) on the residual stream, against shuffled labels. Intervals are
Bonferroni-adjusted over the five comparisons (utility and forced-deliberate accuracy in two splits, the probe).
Every setting was fixed before any result was seen.
"""

import dataclasses
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from experiments import grpo
from experiments.analysis.utility_report import write_report
from experiments.analysis.utility_results import Decisions, utility_arms, utility_table, verdict
from experiments.harness import cli, seeds
from experiments.harness.labelling import split_problems
from experiments.harness.post_hoc import answer_probability, computation_probe
from experiments.harness.rewards import DEFAULT_PAYOFFS
from experiments.harness.rollout import EVAL_BATCH, rollouts, sampled_rollouts
from experiments.harness.rundir import check_writable, init_run, write_json
from experiments.harness.tasks import hedged_task
from probes.bands import check_runs
from probes.calibration import Utility
from probes.layout import RunLayout, checkpoint_dir, read_json
from probes.models import load_bridge, load_hf, load_tokenizer
from probes.stats import seeds_then_rows

ARMS = {"utility": "utility", "symmetric": "binary"}
"""The two arms and the GRPO reward each trains with."""


@dataclasses.dataclass(frozen=True)
class UtilityArgs:
    """GRPO on the utility directly vs on the symmetric reward with a post-hoc threshold; utility and features."""

    run: Path = Path("runs/signals")
    """Run directory pretrained with --abstain-frac, with bands/table.json (experiments.bands)."""
    preset: str = "default"
    """Named defaults (smoke, default)."""
    band: str = "medium"
    """The band whose pool both arms train on (one study per band, in utility/<band>/)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """GRPO seeds per arm."""
    grpo_steps: int = 40
    """GRPO updates per run."""
    grpo_preset: str = "default"
    """The GRPO stage's preset the runs use (its other knobs)."""
    payoffs: tuple[float, float, float] = DEFAULT_PAYOFFS
    """Payoffs of a right answer, a wrong one and an abstention."""
    eval_samples: int = 4
    """Completions per held-out problem at T = 1."""
    hook: str = "blocks.1.hook_resid_post"
    """Residual stream the computation probe reads."""
    probe_per_k: int = 40
    """Problems per knob (within pretraining) in each of the probe's train and test splits (the causal stream)."""
    n_boot: int = 1000
    """Bootstrap resamples per interval."""
    device: str = "cpu"
    """Torch device."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        check_runs(self.band, self.seeds)
        if min(self.grpo_steps, self.eval_samples, self.probe_per_k, self.n_boot) < 1:
            raise ValueError("grpo_steps, eval_samples, probe_per_k, n_boot: must be >= 1")
        self.utility  # noqa: B018 -- validate the payoffs now

    @property
    def utility(self) -> Utility:
        return Utility(*self.payoffs)

    @property
    def level(self) -> float:
        return 1 - 0.05 / 5

    def grpo_args(self, arm: str, seed: int) -> grpo.GRPOArgs:
        return cli.preset_args(grpo.GRPOArgs, grpo.PRESETS, self.grpo_preset, run=self.run, band=self.band, seed=seed, steps=self.grpo_steps,
                               reward=ARMS[arm], payoffs=self.payoffs, study=f"utility/{self.band}/{arm}", device=self.device)  # fmt: skip


PRESETS: dict[str, dict] = {
    "default": {},
    "smoke": dict(seeds=(0, 1), grpo_steps=2, grpo_preset="smoke", eval_samples=2, probe_per_k=4, n_boot=50, hook="blocks.0.hook_resid_post"),
}


def read_model(path: Path, problems: list, probe_split: tuple[list, list], args: UtilityArgs, cache: Path) -> dict:
    """A model's held-out samples (correct, abstained, p), forced-deliberate greedy correctness per problem, and
    the computation probe's accuracies; cached in ``cache``."""
    if cache.exists():
        return read_json(cache)
    model, tokenizer = load_hf(path, args.device), load_tokenizer(path)
    res = sampled_rollouts(model, tokenizer, problems, args.eval_samples, seeds.utility_eval(0))
    p = answer_probability(model, tokenizer, res)
    rows = [{"correct": r.parsed.correct, "abstained": bool(getattr(r.parsed, "abstained", False)), "p": None if np.isnan(v) else float(v)}
            for r, v in zip(res, p)]  # fmt: skip
    forced = rollouts(model, tokenizer, problems, mode="deliberate", temperature=0.0, batch_size=EVAL_BATCH)
    pr = computation_probe(load_bridge(path, args.device), tokenizer, args.hook, *probe_split)
    record = {"rows": rows, "forced_deliberate": [r.parsed.correct for r in forced], "probe": dataclasses.asdict(pr)}
    write_json(cache, record)
    return record


def main(args: UtilityArgs) -> dict:
    """Train (or resume) both arms, read every final checkpoint, write results.json and report.md."""
    task, layout = hedged_task(args.run, "abstain", "the utility study"), RunLayout(args.run)
    out = layout.utility(args.band)
    check_writable(out.root)
    init_run(args.run, f"utility/{args.band}", args)
    stage = cli.StageClock("utility", out.profile)
    stage(f"GRPO: {len(ARMS)} arms x {len(args.seeds)} seeds on the {args.band} pool, {args.grpo_steps} steps")
    for arm in ARMS:
        for seed in args.seeds:
            grpo.main(args.grpo_args(arm, seed))
    stage("read every final checkpoint: held-out samples, forced-deliberate accuracy, computation probe")
    table = read_json(layout.band_table)
    problems = [task.from_record(r) for r in table["eval_set"]]
    pre = read_json(layout.config)["stages"]["pretrain"]
    probe_split = split_problems(0, task.knobs(pre["k_train_max"]), args.probe_per_k, task)
    models = {"base": layout.base} | {f"{a}/seed{s}": checkpoint_dir(args.grpo_args(a, s).out, args.grpo_steps) for a in ARMS for s in args.seeds}
    reads = {m: read_model(path, problems, probe_split, args, out.samples(m)) for m, path in tqdm(models.items(), desc="utility: reading")}
    stage("statistics, figures and report")
    decisions = {m: Decisions.of_rows(r["rows"], args.eval_samples) for m, r in reads.items()}
    k_P = np.array([r["k"] for r in table["eval_set"]])
    fit_rows, eval_rows = np.arange(0, k_P.size, 2), np.arange(1, k_P.size, 2)  # thresholds fitted on one half
    arms, thresholds = utility_arms([decisions[f"utility/seed{s}"] for s in args.seeds], [decisions[f"symmetric/seed{s}"] for s in args.seeds],
                                    fit_rows, args.utility)  # fmt: skip
    splits = {"in distribution": eval_rows[k_P[eval_rows] <= pre["k_train_max"]], "beyond": eval_rows[k_P[eval_rows] > pre["k_train_max"]]}
    splits = {name: rows for name, rows in splits.items() if rows.size}
    tables = {name: utility_table(arms, rows, args.level, args.n_boot, seed=i) for i, (name, rows) in enumerate(splits.items())}
    features = feature_tables(reads, args, splits_all={n: np.flatnonzero((k_P <= pre["k_train_max"]) == (n == "in distribution")) for n in splits})
    cls, sentence = verdict(tables, features, args.level)
    result = {
        "preset": args.preset, "band": args.band, "seeds": list(args.seeds), "payoffs": list(args.payoffs),
        "threshold_theory": args.utility.threshold, "thresholds_fitted": thresholds, "k_train_max": pre["k_train_max"],
        "level": args.level, "splits": tables, "features": features,
        "base": {name: float(decisions["base"].correct_PN[rows].mean()) for name, rows in splits.items()},
        "probe_controls": {m: {k: r["probe"][k] for k in ("accuracy", "shuffled_accuracy", "majority")} for m, r in reads.items()},
        "verdict_class": cls, "verdict": sentence,
    }  # fmt: skip
    write_json(out.results, result)
    stage.finish()
    write_report(out, result)
    print(sentence)
    return result


def feature_tables(reads: dict, args: UtilityArgs, splits_all: dict[str, np.ndarray]) -> dict[str, dict]:
    """Symmetric against utility-trained runs: forced-deliberate accuracy per split (paired on problems), and the
    computation probe's test accuracy (one value per seed)."""
    def runs(arm: str, key: str):
        return [(np.asarray(reads[f"{arm}/seed{s}"][key], dtype=float).reshape(-1),) for s in args.seeds]

    out = {}
    for name, rows in splits_all.items():
        stat = f"forced-deliberate accuracy, {name}"
        out[stat] = seeds_then_rows({a: runs(a, "forced_deliberate") for a in ARMS}, rows, lambda x, stat=stat: {stat: float(x.mean())},
                                    reference="utility", level=args.level, n_boot=args.n_boot)  # fmt: skip
    probe = {a: [(np.array([reads[f"{a}/seed{s}"]["probe"]["accuracy"]]),) for s in args.seeds] for a in ARMS}
    out["computation probe accuracy"] = seeds_then_rows(probe, np.array([0]), lambda x: {"computation probe accuracy": float(x.mean())},
                                                        reference="utility", level=args.level, n_boot=args.n_boot)  # fmt: skip
    return out


if __name__ == "__main__":
    cli.run(main, UtilityArgs, PRESETS)
