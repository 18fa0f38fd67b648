"""Does a Brier reward calibrate stated confidence without costing accuracy?
``python -m experiments.calibration --run runs/NAME``.

On a run pretrained with ``--confidence`` (every completion ends ``conf q``, q drawn at random in pretraining:
the format, not calibration) whose bands are measured: GRPO on one band's pool (medium by default) with each
reward variant (binary, brier, log: ``experiments.harness.training.rewards``) and several seeds, everything else
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
import functools
from pathlib import Path

from experiments import grpo
from experiments.analysis.calibration_report import write_report
from experiments.analysis.calibration_results import CalibrationResult, Samples, analyse
from experiments.harness import cli, seeds
from experiments.harness.studies import reward_study
from experiments.harness.studies.reward_study import HeldOut, Sampled
from probes.bands import check_runs

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
            raise ValueError(
                f"tested: must be one of the rewards after the reference {self.rewards[0]!r}, got {self.tested!r}"
            )
        if min(self.grpo_steps, self.eval_samples, self.n_boot) < 1:
            raise ValueError("grpo_steps, eval_samples, n_boot: must be >= 1")

    def grpo_args(self, reward: str, seed: int) -> grpo.GRPOArgs:
        return cli.preset_args(
            grpo.GRPOArgs,
            grpo.PRESETS,
            self.grpo_preset,
            run=self.run,
            band=self.band,
            seed=seed,
            steps=self.grpo_steps,
            reward=reward,
            study=f"calibration/{self.band}/{reward}",
            device=self.device,
        )

    @property
    def level(self) -> float:
        """Interval level: 95% Bonferroni-adjusted over 2 metrics x 2 splits."""
        return 1 - 0.05 / 4


PRESETS: dict[str, dict] = {
    "default": {},
    "smoke": dict(seeds=(0, 1), grpo_steps=2, grpo_preset="smoke", eval_samples=2, n_boot=50),
}


def read_rows(s: Sampled, held: HeldOut) -> list[dict]:
    """What the study keeps of a model's samples: per sample (problem-major), correctness, stated q, the answer."""
    return [
        {
            "pid": r.problem.pid,
            "k": r.problem.k,
            "correct": r.parsed.correct,
            "q": r.parsed.q,
            "answer": "" if r.parsed.inner is None or r.parsed.format_error else str(r.parsed.inner.answer),
        }
        for r in s.rollouts
    ]


def analyse_rows(args: CalibrationArgs, rows: dict[str, list[dict]], held: HeldOut) -> CalibrationResult:
    """The result from every model's rows: the base model beside each variant's runs, in seed order."""
    samples = {m: Samples.of_rows(r, args.eval_samples) for m, r in rows.items()}
    runs = {"base": [samples["base"]]} | {r: [samples[f"{r}/seed{s}"] for s in args.seeds] for r in args.rewards}
    return analyse(
        runs,
        held.k_P,
        held.k_train_max,
        preset=args.preset,
        band=args.band,
        seeds=args.seeds,
        tested=args.tested,
        level=args.level,
        n_boot=args.n_boot,
    )


def main(args: CalibrationArgs) -> CalibrationResult:
    """Train (or resume) every variant's runs, sample the evaluations, write results.json and report.md."""
    study = reward_study.RewardStudy(
        "calibration",
        needs="confidence",
        arms=args.rewards,
        arm_kind="rewards",
        eval_seed=seeds.calibration_eval(0),
        reading=f"sample {args.eval_samples} completions per held-out problem: base model and every final checkpoint",
    )
    return reward_study.run(args, study, grpo.main, read_rows, functools.partial(analyse_rows, args), write_report)


if __name__ == "__main__":
    cli.run(main, CalibrationArgs, PRESETS)
