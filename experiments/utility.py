"""Utility-weighted training vs symmetric training with a post-hoc threshold:
``python -m experiments.utility --run runs/NAME``.

The decision: answer, or abstain (``abstain <eos>``). A right answer pays +1, a wrong one -3, an abstention 0
(``payoffs``), so answering pays only where P(right) >= 0.75. On a run pretrained with ``--abstain-frac`` (the
base model abstains at random, whatever the problem) whose bands are measured, GRPO on one band's pool with
several seeds, in two arms, everything else equal:

(a) direct: the utility itself is the reward (abstaining is learned);
(b) post hoc: the symmetric binary reward, then each sampled answer is kept only where the model's own
    probability of it (``experiments.harness.studies.post_hoc.answer_probability``) reaches a threshold: 0.75 (right
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
import functools
from pathlib import Path

import numpy as np

from experiments import grpo
from experiments.analysis.utility_report import write_report
from experiments.analysis.utility_results import DIRECT, SYMMETRIC, UtilityResult, analyse
from experiments.harness import cli, seeds
from experiments.harness.reading.labelling import split_problems
from experiments.harness.studies import reward_study
from experiments.harness.studies.post_hoc import answer_probability, computation_probe
from experiments.harness.studies.reward_study import HeldOut, Sampled
from experiments.harness.training.rewards import DEFAULT_PAYOFFS
from experiments.harness.training.rollout import EVAL_BATCH, rollouts
from probes.bands import check_runs
from probes.calibration import Utility
from probes.models import load_bridge

ARMS = {DIRECT: "utility", SYMMETRIC: "binary"}
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
        return cli.preset_args(
            grpo.GRPOArgs,
            grpo.PRESETS,
            self.grpo_preset,
            run=self.run,
            band=self.band,
            seed=seed,
            steps=self.grpo_steps,
            reward=ARMS[arm],
            payoffs=self.payoffs,
            study=f"utility/{self.band}/{arm}",
            device=self.device,
        )


PRESETS: dict[str, dict] = {
    "default": {},
    "smoke": dict(
        seeds=(0, 1),
        grpo_steps=2,
        grpo_preset="smoke",
        eval_samples=2,
        probe_per_k=4,
        n_boot=50,
        hook="blocks.0.hook_resid_post",
    ),
}


def read_model(args: UtilityArgs, s: Sampled, held: HeldOut) -> dict:
    """A model's held-out samples (correct, abstained, p), forced-deliberate greedy correctness per problem, and
    the computation probe's accuracies (on one split of the causal stream, the same for every model)."""
    p = answer_probability(s.model, s.tokenizer, s.rollouts)
    rows = [
        {
            "correct": r.parsed.correct,
            "abstained": bool(getattr(r.parsed, "abstained", False)),
            "p": None if np.isnan(v) else float(v),
        }
        for r, v in zip(s.rollouts, p)
    ]
    forced = rollouts(s.model, s.tokenizer, held.problems, mode="deliberate", temperature=0.0, batch_size=EVAL_BATCH)
    probe_split = split_problems(0, held.task.knobs(held.k_train_max), args.probe_per_k, held.task)
    pr = computation_probe(load_bridge(s.path, args.device), s.tokenizer, args.hook, *probe_split)
    return {"rows": rows, "forced_deliberate": [r.parsed.correct for r in forced], "probe": dataclasses.asdict(pr)}


def analyse_reads(args: UtilityArgs, reads: dict[str, dict], held: HeldOut) -> UtilityResult:
    """The result from what was read of every model."""
    return analyse(
        reads,
        held.k_P,
        held.k_train_max,
        preset=args.preset,
        band=args.band,
        seeds=args.seeds,
        eval_samples=args.eval_samples,
        payoffs=args.payoffs,
        level=args.level,
        n_boot=args.n_boot,
    )


def main(args: UtilityArgs) -> UtilityResult:
    """Train (or resume) both arms, read every final checkpoint, write results.json and report.md."""
    study = reward_study.RewardStudy(
        "utility",
        needs="abstain",
        arms=tuple(ARMS),
        arm_kind="arms",
        eval_seed=seeds.utility_eval(0),
        reading="read every final checkpoint: held-out samples, forced-deliberate accuracy, computation probe",
    )
    read, analysed = functools.partial(read_model, args), functools.partial(analyse_reads, args)
    return reward_study.run(args, study, grpo.main, read, analysed, write_report)


if __name__ == "__main__":
    cli.run(main, UtilityArgs, PRESETS)
