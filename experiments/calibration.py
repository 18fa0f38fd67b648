"""Does a Brier reward calibrate stated confidence without costing accuracy? ``python -m experiments.calibration --run runs/NAME``.

On a run pretrained with ``--confidence`` (every completion ends ``conf q``, q drawn at random in pretraining:
the format, not calibration) whose bands are measured: GRPO on one band's pool (medium by default) with each
reward variant (binary, brier, log: ``experiments.harness.rewards``) and several seeds, everything else
equal; everything lives in ``<run>/calibration/<band>/`` (the runs in ``<variant>/seed<s>/``), so the study
runs once per band for all of them. Then the base model and every final
checkpoint sample ``eval_samples`` completions at T = 1 per held-out problem (the band table's eval set; the
same random numbers for every model). Per variant, in distribution (k within pretraining) and beyond it:
accuracy, ECE (10 equal-width bins of q), Brier score and AUROC of q for correctness, each with a two-level
bootstrap interval (seeds, then problems) Bonferroni-adjusted over the verdict's 2 metrics x splits; reliability
diagrams; and majority voting over each problem's samples, plain and weighted by q.

The verdict tests RLCR's claim (Damani et al. 2025) against the binary reward: the Brier reward lowers ECE
and accuracy does not fall, in each split. Every setting was fixed before any result was seen.
"""

import dataclasses
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from experiments import grpo
from experiments.analysis.calibration_report import write_report
from experiments.analysis.calibration_results import Samples, reliability, split_table, verdict
from experiments.harness import cli, seeds
from experiments.harness.rollout import sampled_rollouts
from experiments.harness.rundir import check_writable, init_run, write_json
from experiments.harness.tasks import hedged_task
from probes.bands import check_runs
from probes.layout import RunLayout, checkpoint_dir, read_json
from probes.models import load_hf, load_tokenizer

SCORED = ("binary", "brier", "log")
"""The reward variants this study compares (utility is the utility study's)."""


@dataclasses.dataclass(frozen=True)
class CalibrationArgs:
    """GRPO with binary, Brier and log rewards on one pool; calibration and accuracy in and out of distribution."""

    run: Path = Path("runs/confidence")
    """Run directory pretrained with --confidence, with bands/table.json (experiments.bands)."""
    preset: str = "default"
    """Named defaults (smoke, default)."""
    band: str = "medium"
    """The band whose pool every variant trains on (one study per band, in calibration/<band>/)."""
    rewards: tuple[str, ...] = ("binary", "brier", "log")
    """Reward variants; the first is the reference the verdict compares ``tested`` with."""
    tested: str = "brier"
    """The variant the verdict tests against the first."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """GRPO seeds per variant."""
    grpo_steps: int = 40
    """GRPO updates per run."""
    grpo_preset: str = "default"
    """The GRPO stage's preset the runs use (its other knobs)."""
    eval_samples: int = 8
    """Completions per held-out problem at T = 1 (metrics pool them; voting votes over them)."""
    n_boot: int = 1000
    """Bootstrap resamples per interval."""
    device: str = "cpu"
    """Torch device."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        check_runs(self.band, self.seeds)
        if not self.rewards or set(self.rewards) - set(SCORED):
            raise ValueError(f"rewards: must be from binary, brier, log; got {self.rewards}")
        if self.tested not in self.rewards[1:]:
            raise ValueError(f"tested: must be one of the rewards after the reference {self.rewards[0]!r}, got {self.tested!r}")
        if min(self.grpo_steps, self.eval_samples, self.n_boot) < 1:
            raise ValueError("grpo_steps, eval_samples, n_boot: must be >= 1")

    def grpo_args(self, reward: str, seed: int) -> grpo.GRPOArgs:
        return cli.preset_args(grpo.GRPOArgs, grpo.PRESETS, self.grpo_preset, run=self.run, band=self.band, seed=seed,
                               steps=self.grpo_steps, reward=reward, study=f"calibration/{self.band}/{reward}", device=self.device)  # fmt: skip

    @property
    def level(self) -> float:
        """Interval level: 95% Bonferroni-adjusted over 2 metrics x 2 splits."""
        return 1 - 0.05 / 4


PRESETS: dict[str, dict] = {
    "default": {},
    "smoke": dict(seeds=(0, 1), grpo_steps=2, grpo_preset="smoke", eval_samples=2, n_boot=50),
}


def sample_rows(path: Path, problems: list, args: CalibrationArgs, cache: Path) -> list[dict]:
    """Each problem's ``eval_samples`` completions (problem-major), cached in ``cache``."""
    if cache.exists():
        return read_json(cache)
    model, tokenizer = load_hf(path, args.device), load_tokenizer(path)
    res = sampled_rollouts(model, tokenizer, problems, args.eval_samples, seeds.calibration_eval(0))
    rows = [{"pid": r.problem.pid, "k": r.problem.k, "correct": r.parsed.correct, "q": r.parsed.q,
             "answer": "" if r.parsed.inner is None or r.parsed.format_error else str(r.parsed.inner.answer)} for r in res]  # fmt: skip
    write_json(cache, rows)
    return rows


def main(args: CalibrationArgs) -> dict:
    """Train (or resume) every variant's runs, sample the evaluations, write results.json and report.md."""
    task, layout = hedged_task(args.run, "confidence", "the calibration study"), RunLayout(args.run)
    out = layout.calibration(args.band)
    check_writable(out.root)
    init_run(args.run, f"calibration/{args.band}", args)
    stage = cli.StageClock("calibration", out.profile)
    stage(f"GRPO: {len(args.rewards)} rewards x {len(args.seeds)} seeds on the {args.band} pool, {args.grpo_steps} steps")
    for reward in args.rewards:
        for seed in args.seeds:
            grpo.main(args.grpo_args(reward, seed))
    stage(f"sample {args.eval_samples} completions per held-out problem: base model and every final checkpoint")
    table = read_json(layout.band_table)
    problems = [task.from_record(r) for r in table["eval_set"]]
    models = {"base": layout.base} | {f"{r}/seed{s}": checkpoint_dir(args.grpo_args(r, s).out, args.grpo_steps) for r in args.rewards for s in args.seeds}
    rows = {name: sample_rows(path, problems, args, out.samples(name)) for name, path in tqdm(models.items(), desc="calibration: sampling")}
    stage("statistics, figures and report")
    runs = {r: [Samples.of_rows(rows[f"{r}/seed{s}"], args.eval_samples) for s in args.seeds] for r in args.rewards}
    runs_all = {"base": [Samples.of_rows(rows["base"], args.eval_samples)], **runs}
    k_train_max = read_json(layout.config)["stages"]["pretrain"]["k_train_max"]
    k_P = np.array([r["k"] for r in table["eval_set"]])
    splits = {"in distribution": np.flatnonzero(k_P <= k_train_max), "beyond": np.flatnonzero(k_P > k_train_max)}
    splits = {name: rows_ for name, rows_ in splits.items() if rows_.size}
    tables = {name: split_table(runs_all, rows_, args.n_boot, seed=i, reference=args.rewards[0], level=args.level)
              for i, (name, rows_) in enumerate(splits.items())}  # fmt: skip
    cls, sentence = verdict(tables, args.rewards[0], args.tested, args.level)
    result = {
        "preset": args.preset, "band": args.band, "rewards": list(args.rewards), "seeds": list(args.seeds),
        "k_train_max": k_train_max, "level": args.level, "splits": tables,
        "reliability": {name: {v: reliability(r, rows_) for v, r in runs_all.items()} for name, rows_ in splits.items()},
        "verdict_class": cls, "verdict": sentence,
    }  # fmt: skip
    write_json(out.results, result)
    stage.finish()
    write_report(out, result)
    print(sentence)
    return result


if __name__ == "__main__":
    cli.run(main, CalibrationArgs, PRESETS)
