"""Do difficulty metrics predict what an example is worth? ``python -m experiments.value_study --run runs/NAME``.

Needs a run with base/ and bands/table.json (``experiments.band_study`` makes one; its
GRPO band runs, when present, add the ledger metrics and the drift analysis). For a
sample of each band's training pool it measures

* difficulty metrics: base pass rate and learnability, ledger learnability / final pass
  rate / forgetting along the band runs, base loss, EL2N, GraNd and forgetting from early
  supervised runs (experiments.harness.studies.sft_scores), generated length, k, and optionally
  memorization from GRPO on random halves of the sample;
* true value: one-sample GRPO amplification from the base model, the change of held-out
  accuracy, and damage (experiments.harness.studies.one_shot); plus gradient alignment, blind (a
  disjoint validation set, independent rollouts) and target-aware (the eval set itself);

and what the correlations may claim (experiments.analysis.value_inference: Spearman-Brown
ceilings, Holm-corrected permutation tests, the leakage of the target-aware estimate), then
writes ``value/examples.json`` (one row per problem), ``value/results.json``,
``value/report.md`` and ``value/figures/``. Stages persist as they finish (one-shot runs
line by line), so rerunning the same command resumes.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from experiments.analysis.value_report import write_report
from experiments.analysis.value_results import ValueInputs, ValueSettings, analyse
from experiments.harness import cli, seeds
from experiments.harness.rundir import append_jsonl, cached_json, check_writable, init_run, write_json
from experiments.harness.studies.one_shot import (
    EvalResult,
    EvalSet,
    alignment,
    eval_gradient,
    evaluate,
    example_gradient,
    one_shot,
    value_of,
)
from experiments.harness.studies.sft_scores import scoring_run, target_batch
from experiments.harness.tasks.family import MODES, Problem, Task
from experiments.harness.tasks.registry import run_task
from experiments.harness.training.rl import PolicySpec
from experiments.harness.training.rollout import sampled_completions
from experiments.harness.training.supervised import Recipe
from probes.bands import BANDS
from probes.difficulty import teacher_forced
from probes.layout import LEDGER, RunDirError, RunLayout, ValueLayout, read_json, read_jsonl
from probes.models import load_hf, load_tokenizer


@dataclasses.dataclass(frozen=True)
class ValueArgs:
    """Relate per-example difficulty metrics to the measured value of training examples."""

    run: Path = Path("runs/default")
    """Run directory with base/ and bands/table.json (GRPO band runs optional)."""
    preset: str = "default"
    """smoke (< 60 s, tests), default (2 CPU cores), gpu."""
    seed: int = 0
    """Seeds the sample, base measurements and the eval sampling."""
    per_band: int = 20
    """Problems sampled from each band's training pool (20, not 32, pays for a third value seed and five
    scoring runs in the default's time budget)."""
    n_base_samples: int = 32
    """Completions per problem for the base pass rate (independent of the band label's samples)."""
    value_seeds: tuple[int, ...] = (0, 1, 2)
    """One-sample runs per problem; two or more give the value's seed-to-seed reliability (three give a
    within-band reliability worth reading)."""
    one_shot_steps: int = 10
    """GRPO updates of a one-sample run."""
    copies: int = 4
    """Groups of the single problem per update."""
    group_size: int = 8
    """Completions per group (G)."""
    lr: float = 1e-4
    """AdamW learning rate of one-sample runs (the band runs' default)."""
    eval_samples: int = 2
    """Sampled completions per held-out problem when measuring accuracy."""
    sft_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Fresh-init supervised scoring runs: EL2N and GraNd are their mean, forgetting their median
    (a seed that never learns a problem counts as inf, which ranks last)."""
    sft_steps: int = 450
    """Steps of each scoring run, on the recipe's full lr schedule (at most its length; forgetting counts over
    them, so it describes the first 30% of training)."""
    score_step: int = 225
    """Step of a scoring run at which EL2N, GraNd and loss are read: 15% of the 1500-step recipe, early as in
    Paul et al. (who read EL2N at ~10% of training); set before looking at any correlation."""
    sensitivity_steps: tuple[int, ...] = (75, 450)
    """Further read steps, reported only as a sensitivity table."""
    presentations: int = 30
    """Times each sampled problem is presented during a scoring run, once every 15 steps (forgetting counts
    flips between them; the sensitivity table also counts over every 2nd and every 4th presentation)."""
    memo_subsets: int = 4
    """GRPO runs on random halves of the sample for memorization (0 skips it)."""
    memo_steps: int = 20
    """GRPO updates of each memorization run."""
    drift_window: int = 10
    """Steps of ledger pooled to re-measure a problem's band during a band run."""
    n_boot: int = 1000
    """Bootstrap resamples for confidence intervals."""
    device: str = "cpu"
    """Torch device."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        for name in (
            "per_band",
            "n_base_samples",
            "one_shot_steps",
            "copies",
            "eval_samples",
            "sft_steps",
            "presentations",
            "memo_steps",
            "drift_window",
            "n_boot",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2:
            raise ValueError(f"group_size: group-relative advantages need >= 2, got {self.group_size}")
        if not self.value_seeds or not self.sft_seeds:
            raise ValueError("value_seeds, sft_seeds: need at least one seed each")
        if self.presentations > self.sft_steps:
            raise ValueError(f"presentations: {self.presentations} exceeds sft_steps {self.sft_steps}")
        for step in self.read_steps:
            if not 0 <= step <= self.sft_steps:
                raise ValueError(
                    f"score_step, sensitivity_steps: must lie in [0, sft_steps={self.sft_steps}], got {step}"
                )
        if self.memo_subsets < 0 or not self.lr > 0:
            raise ValueError("memo_subsets: must be >= 0; lr: must be > 0")

    @property
    def read_steps(self) -> tuple[int, ...]:
        """Every step at which the scoring runs read EL2N, GraNd and loss."""
        return tuple(sorted({self.score_step, *self.sensitivity_steps}))

    @property
    def out(self) -> Path:
        return self.layout.root

    @property
    def layout(self) -> ValueLayout:
        return RunLayout(self.run).value

    @property
    def settings(self) -> ValueSettings:
        return ValueSettings(
            self.preset,
            self.value_seeds,
            self.sft_seeds,
            self.one_shot_steps,
            self.drift_window,
            self.n_boot,
            self.score_step,
            self.read_steps,
        )

    def policy(self, prompts_per_step: int | None = None) -> PolicySpec:
        """The one-sample runs' GRPO settings (``prompts_per_step`` differs for memorization runs)."""
        return PolicySpec(prompts_per_step or self.copies, self.group_size, self.lr, device=self.device)


PRESETS: dict[str, dict] = {
    "default": {},
    "smoke": dict(
        per_band=4,
        n_base_samples=8,
        value_seeds=(0, 1),
        one_shot_steps=2,
        copies=2,
        group_size=4,
        eval_samples=1,
        sft_seeds=(0, 1),
        sft_steps=12,
        score_step=2,
        sensitivity_steps=(6,),
        presentations=4,
        memo_subsets=2,
        memo_steps=2,
        drift_window=2,
        n_boot=200,
    ),
    "gpu": dict(
        per_band=128,
        n_base_samples=64,
        value_seeds=(0, 1, 2, 3),
        one_shot_steps=20,
        eval_samples=8,
        sft_seeds=tuple(range(10)),
        sft_steps=4000,
        score_step=600,
        sensitivity_steps=(200, 1800, 4000),
        presentations=100,
        memo_subsets=32,
        device="cuda",
    ),
}


def draw_sample(table: dict, per_band: int, seed: int) -> list[dict]:
    """``per_band`` pool records per band (all of a pool when it is smaller), band kept."""
    rng = seeds.rng("value_sample", seed)
    out = []
    for band in BANDS:
        pool = table["pools"][band]
        idx = sorted(rng.choice(len(pool), size=min(per_band, len(pool)), replace=False).tolist())
        out += [{**pool[i], "band": band} for i in idx]
    return out


def _mean_or_nan(xs: list[float]) -> float:
    return float(np.mean(xs)) if xs else float("nan")


def base_stage(args: ValueArgs, model, tokenizer, problems: list[Problem], ev: EvalSet) -> dict:
    """Base pass rate, generated lengths and teacher-forced loss per mode; base eval results."""
    sampling = seeds.value_base_sampling(args.seed)
    parsed = sampled_completions(model, tokenizer, problems, args.n_base_samples, sampling)
    vocab = tokenizer.get_vocab()
    out = {
        "pass_rate": [float(np.mean([p.correct for p in ps])) for ps in parsed],
        "length": [float(np.mean([p.length for p in ps])) for ps in parsed],
        "trace_length": [_mean_or_nan([p.length for p in ps if p.mode == "deliberate"]) for ps in parsed],
        "deliberate_rate": [float(np.mean([p.mode == "deliberate" for p in ps])) for ps in parsed],
    }
    with torch.no_grad():
        for mode in MODES:
            ids_BL, labels_BL = (t.to(args.device) for t in target_batch(problems, mode, vocab))
            out[f"loss/{mode}"] = teacher_forced(model(input_ids=ids_BL).logits, labels_BL).loss.tolist()
    base_eval = evaluate(model, tokenizer, ev)
    out["eval"] = {
        "greedy": base_eval.greedy.tolist(),
        "sampled": base_eval.sampled.tolist(),
        "behaviour": base_eval.behaviour,
    }
    return out


def one_shot_stage(
    args: ValueArgs, problems: list[Problem], ev: EvalSet, base_eval: EvalResult
) -> dict[int, list[dict]]:
    """One-sample runs, appended line by line to one_shot/seed<v>.jsonl (a rerun skips finished ones)."""
    base = RunLayout(args.run).base
    tokenizer, ref_model = load_tokenizer(base), load_hf(base, args.device)
    model = load_hf(base, args.device)
    base_state = {k: v.clone() for k, v in ref_model.state_dict().items()}
    rows = {}
    for v in args.value_seeds:
        path = args.layout.one_shot(v)
        path.parent.mkdir(parents=True, exist_ok=True)
        done = {r["pid"] for r in read_jsonl(path)}
        for i, pr in enumerate(tqdm(problems, desc=f"one-sample runs s{v}")):
            if pr.pid in done:
                continue
            model.load_state_dict(base_state)
            trace = one_shot(model, ref_model, tokenizer, [pr], i, v, args.policy(), args.one_shot_steps)
            after = evaluate(model, tokenizer, ev)
            row = {
                "pid": pr.pid,
                "seed": v,
                **value_of(after, base_eval, ev.bands),
                **trace,
                "eval_behaviour": after.behaviour,
            }
            append_jsonl(path, [row])
        rows[v] = read_jsonl(path)
    return rows


def validation_set(ev: EvalSet, problems: list[Problem], seed: int, task: Task) -> list[Problem]:
    """As many problems per k as the eval set has, drawn like it, sharing no content with the eval set
    or the sampled problems: what the blind gradient estimate aligns with."""
    exclude = {pr.key for pr in [*ev.problems, *problems]}
    counts = Counter(pr.k for pr in ev.problems)
    return [pr for k in sorted(counts) for pr in seeds.validation_problems(seed, k, counts[k], task, exclude)]


def grad_stage(args: ValueArgs, model, tokenizer, problems: list[Problem], ev: EvalSet, task: Task) -> list[dict]:
    """Per problem: gradient alignment with the eval set from the value run's own step-0 rollouts
    (target-aware) and with a disjoint validation set from independent rollouts (blind)."""
    policy, value_seed = args.policy(), args.value_seeds[0]
    gen_eval = seeds.value_eval_gradient(args.seed)
    g_eval = eval_gradient(model, tokenizer, ev.problems, args.group_size, gen_eval, args.device)
    val = validation_set(ev, problems, args.seed, task)
    g_val = eval_gradient(model, tokenizer, val, args.group_size, seeds.blind_gradient(args.seed, -1)[1], args.device)
    rows = []
    for i, pr in enumerate(tqdm(problems, desc="gradient alignment (target-aware, blind)")):
        target = alignment(
            example_gradient(model, tokenizer, pr, policy, seeds.one_shot_step(value_seed, i, 0)), g_eval
        )
        blind = alignment(example_gradient(model, tokenizer, pr, policy, seeds.blind_gradient(args.seed, i)), g_val)
        rows.append(
            {**{f"{k}/target_aware": v for k, v in target.items()}, **{f"{k}/blind": v for k, v in blind.items()}}
        )
    return rows


def memo_stage(args: ValueArgs, problems: list[Problem], r: int) -> dict:
    """GRPO from base on a random half of the sample, then every sampled problem's pass rate."""
    base = RunLayout(args.run).base
    model, ref_model, tokenizer = load_hf(base, args.device), load_hf(base, args.device), load_tokenizer(base)
    inside = seeds.rng("memo_subset", args.seed, r).permutation(len(problems)) < len(problems) // 2
    pool = [pr for pr, x in zip(problems, inside) if x]
    policy = args.policy(prompts_per_step=max(1, min(16, len(pool))))
    one_shot(
        model, ref_model, tokenizer, pool, len(problems) + r, args.seed, policy, args.memo_steps
    )  # index past the one-sample runs'
    parsed = sampled_completions(model, tokenizer, problems, args.group_size, seeds.memo_sampling(args.seed, r))
    rates = [float(np.mean([p.correct for p in ps])) for ps in parsed]
    return {"inside": inside.tolist(), "pass_rate": rates}


def band_ledgers(run: Path) -> dict[str, list[list[dict]]]:
    """Every GRPO band run's ledger, per band (empty lists when the run has none)."""
    runs = RunLayout(run).band_runs()
    return {b: [read_jsonl(d / LEDGER) for name, d in runs.items() if name.split("/")[1] == b] for b in BANDS}


def main(args: ValueArgs) -> dict:
    """Run or resume every stage; returns results.json's content."""
    run, out = RunLayout(args.run), args.layout
    if not run.band_table.exists():
        raise RunDirError(f"{run.band_table}: missing; run experiments.band_study (or pretrain and bands) first")
    check_writable(out.root)
    init_run(args.run, "value_study", args)
    stage = cli.StageClock("value_study", out.profile)

    table = read_json(run.band_table)
    sample = cached_json(out.sample, lambda: draw_sample(table, args.per_band, args.seed))
    task = run_task(run.root)
    problems = [task.from_record(r) for r in sample]
    ev = EvalSet(
        [task.from_record(r) for r in table["eval_set"]],
        [r["band"] for r in table["eval_set"]],
        args.eval_samples,
        seeds.value_eval_sampling(args.seed),
    )
    model, tokenizer = load_hf(run.base, args.device), load_tokenizer(run.base)
    stage(f"base model: pass rates ({args.n_base_samples} samples), lengths, losses, eval set")
    base = cached_json(out.base, lambda: base_stage(args, model, tokenizer, problems, ev))
    base_eval = EvalResult(
        np.array(base["eval"]["greedy"]), np.array(base["eval"]["sampled"]), base["eval"]["behaviour"]
    )
    stage(
        f"supervised scoring runs (seeds {list(args.sft_seeds)}, {args.sft_steps} steps, scores at "
        f"{list(args.read_steps)})"
    )
    recipe = dataclasses.replace(Recipe.of(read_json(run.config)["stages"]["pretrain"]), device=args.device)
    if args.sft_steps > recipe.steps:
        raise RunDirError(f"sft_steps: {args.sft_steps} exceeds the run's pretraining length {recipe.steps}")
    sft = [
        cached_json(
            out.sft(s),
            lambda s=s: scoring_run(recipe, s, problems, args.sft_steps, args.presentations, args.read_steps),
        )
        for s in args.sft_seeds
    ]
    stage(f"one-sample GRPO runs ({len(problems)} problems x {len(args.value_seeds)} seeds)")
    shots = one_shot_stage(args, problems, ev, base_eval)
    stage("gradient alignment")
    grads = cached_json(out.grad, lambda: grad_stage(args, model, tokenizer, problems, ev, task))
    memo = []
    if args.memo_subsets:
        stage(f"memorization ({args.memo_subsets} GRPO runs on random halves)")
        memo = [cached_json(out.memo(r), lambda r=r: memo_stage(args, problems, r)) for r in range(args.memo_subsets)]
    stage("analysis and report")
    analysis = analyse(ValueInputs(sample, base, sft, shots, grads, memo, band_ledgers(args.run), table), args.settings)
    write_json(out.examples, analysis.examples)
    stage.finish()
    write_report(out.root, analysis)
    res = analysis.result.to_json()
    write_json(out.results, res)
    print(analysis.result.verdict)
    return res


if __name__ == "__main__":
    cli.run(main, ValueArgs, PRESETS)
