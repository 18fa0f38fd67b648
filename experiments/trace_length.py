"""Trace length against difficulty, in and out of the pretraining distribution.

``python -m experiments.trace_length --run runs/NAME [--also runs/OTHER]`` asks the run's base
model (a forced deliberate completion, greedy) for a trace on problems of several settings and
measures, per problem: the generated trace length in tokens (between ``<think>`` and
``</think>``, or to the end; sampling stops 4 tokens past the longest correct trace of its
batch, so runaway traces are capped there), the problem's intrinsic difficulty (the operations a correct trace
performs: chain length k for arithmetic, A*'s operation count for mazes), whether the trace is
valid (every step right, none skipped) and whether the answer is right.

Settings: the pretraining knobs pooled ("in distribution"), the knobs beyond them pooled and one
by one, and for mazes other loop densities over the pretraining sizes. With ``--band-runs`` the
final checkpoint of every band run is measured too: how RL on each difficulty band moved the
correlation. Per setting: Spearman's
rho of generated length with difficulty (bootstrap 95% CI), and the gap to the in-distribution
rho with a Bonferroni-adjusted interval over the out-of-distribution settings. Palod et al.
(2025) report that trace length tracks difficulty in distribution only; a gap interval above 0
is that decoupling. A setting whose difficulty is constant (one arithmetic k) has no rho.
"""

import dataclasses
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from experiments.analysis.trace_length_report import plot
from experiments.analysis.trace_length_results import (
    BandCell,
    Gap,
    RunLengths,
    SettingSummary,
    TraceLengthResult,
    TraceRow,
)
from experiments.harness import cli, seeds
from experiments.harness.rundir import check_writable, init_run, write_json
from experiments.harness.tasks.family import END_THINK, EOS, Task
from experiments.harness.tasks.registry import task_of
from experiments.harness.training.rollout import EVAL_BATCH, rollouts
from probes.bands import BANDS
from probes.layout import RunDirError, RunLayout, band_of_run, checkpoint_dir, latest_checkpoint, read_json
from probes.models import load_hf, load_tokenizer
from probes.stats import bootstrap_mean, spearman, spearman_gap


@dataclasses.dataclass(frozen=True)
class TraceLengthArgs:
    """Generated trace length vs intrinsic difficulty, in and out of distribution."""

    run: Path = Path("runs/default")
    """Run directory with a pretrained base model (its config.json names the task)."""
    preset: str = "default"
    """Named defaults (smoke, default)."""
    also: tuple[Path, ...] = ()
    """Other runs (another task family, say) measured the same way and shown beside this one."""
    per_setting: int = 200
    """Problems per setting (split evenly over its knobs)."""
    loop_fracs: tuple[float, ...] = (0.3, 0.6)
    """Mazes: loop densities other than the pretraining one, each a setting over the pretraining sizes."""
    band_runs: bool = False
    """Also measure the final checkpoint of every band run (the same problems): what RL on each band did."""
    seed: int = 0
    """Seeds the problems (offset by ``seeds.TRACE_LENGTH_SEED``) and the bootstrap."""
    n_boot: int = 1000
    """Bootstrap resamples per interval."""
    device: str = "cpu"
    """Torch device."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        if self.per_setting < 3 or self.n_boot < 10:
            raise ValueError(f"per_setting: need >= 3, n_boot: need >= 10; got {self.per_setting}, {self.n_boot}")
        if any(not 0 <= f <= 1 for f in self.loop_fracs):
            raise ValueError(f"loop_fracs: must lie in [0, 1], got {self.loop_fracs}")


PRESETS: dict[str, dict] = {"default": {}, "smoke": dict(per_setting=24, n_boot=100)}


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    task: Task
    ks: tuple[int, ...]
    axis: str
    """What moves it away from pretraining: "none", "knob" (larger problems) or "density" (maze loops)."""
    distance: float
    """Knob steps beyond the pretraining range (mean over its knobs), or loop-density difference."""


def settings(pre: dict, loop_fracs: tuple[float, ...]) -> list[Setting]:
    """The study's settings for a run's pretraining fields."""
    task = task_of(pre)
    train = task.knobs(pre["k_train_max"])
    beyond = task.knobs(pre["k_eval_max"], pre["k_train_max"] + 1)
    out = [Setting("in distribution", task, train, "none", 0.0)]
    if len(beyond) > 1:
        out.append(Setting("beyond, pooled", task, beyond, "knob", float(np.mean(range(1, len(beyond) + 1)))))
    if beyond:
        out += [Setting(f"k = {k}", task, (k,), "knob", float(i)) for i, k in enumerate(beyond, 1)]
    if task.variant:
        field, label = task.variant
        base = pre.get(field, 0.0)
        out += [
            Setting(f"{label} {f:g}", task_of({**pre, field: f}), train, "density", abs(f - base))
            for f in loop_fracs
            if f != base
        ]
    return out


def measure(model, tokenizer, sets: list[Setting], n: int, seed: int) -> list[dict]:
    """One row per problem of each setting: generated and canonical trace tokens, difficulty, trace validity,
    correctness. A setting takes the first n / |knobs| problems of each knob's stream, so settings that share
    a knob (a pooled one and its parts) share problems, and each is sampled once."""
    plans = [(s, -(-n // len(s.ks))) for s in sets]
    need: dict[tuple[Task, int], int] = {}
    for s, per_k in plans:
        for k in s.ks:
            need[s.task, k] = max(need.get((s.task, k), 0), per_k)
    rows = {}
    for (task, k), m in need.items():
        problems = task.problems(seed + seeds.TRACE_LENGTH_SEED, k, m)
        rows[task, k] = [
            _row(r, tokenizer)
            for r in rollouts(model, tokenizer, problems, mode="deliberate", temperature=0.0, batch_size=EVAL_BATCH)
        ]
    return [
        {"setting": s.name, **row}
        for s, per_k in plans
        for row in [r for k in s.ks for r in rows[s.task, k][:per_k]][:n]
    ]


def _row(r, tokenizer) -> dict:
    words = tokenizer.convert_ids_to_tokens(list(r.completion_ids))  # the forced <think> is not among them
    generated = words.index(END_THINK) if END_THINK in words else len(words) - (words[-1:] == [EOS])
    out = r.parsed
    return {
        "pid": r.problem.pid,
        "k": r.problem.k,
        "difficulty": r.problem.difficulty,
        "generated": generated,
        "canonical": r.problem.completion_words("deliberate").index(END_THINK) - 1,
        "valid_trace": not out.format_error and out.n_wrong_steps == 0 and out.n_skipped_steps == 0,
        "correct": out.correct,
    }


def summarise(rows: list[TraceRow], sets: list[Setting], n_boot: int, seed: int) -> list[SettingSummary]:
    """Per setting: rho(generated, difficulty) with its CI, its gap to the in-distribution rho (Bonferroni
    over the out-of-distribution settings), and the setting's means."""
    col = lambda name, key: [getattr(r, key) for r in rows if r.setting == name]  # noqa: E731
    ref = sets[0].name
    level = 1 - 0.05 / max(1, len(sets) - 1)
    out = []
    for s in sets:
        g, d = col(s.name, "generated"), col(s.name, "difficulty")
        rho = spearman(g, d, n_boot, seed)
        gap = (
            (np.nan,) * 3
            if s.name == ref
            else spearman_gap(col(ref, "generated"), col(ref, "difficulty"), g, d, n_boot, seed, level)
        )
        out.append(
            SettingSummary(
                setting=s.name,
                axis=s.axis,
                distance=s.distance,
                knobs=list(s.ks),
                n=len(g),
                rho=rho,
                gap_to_in_distribution=Gap(gap[0], (gap[1], gap[2]), level),
                constant_difficulty=len(set(d)) < 2,
                mean_generated=float(np.mean(g)),
                mean_canonical=float(np.mean(col(s.name, "canonical"))),
                mean_difficulty=float(np.mean(d)),
                valid_trace_rate=float(np.mean(col(s.name, "valid_trace"))),
                accuracy=float(np.mean(col(s.name, "correct"))),
            )
        )
    return out


def models_of(layout: RunLayout, band_runs: bool) -> dict[str, Path]:
    """The base model, and with ``band_runs`` each band run's final checkpoint, by name."""
    out = {"base": layout.base}
    for name, path in layout.band_runs().items() if band_runs else ():
        if step := latest_checkpoint(path):
            out[name] = checkpoint_dir(path, step)
    return out


def by_band(base_rho: dict[str, float], after_rl: dict[str, dict[str, float]]) -> dict[str, dict[str, BandCell]]:
    """Per band and setting: each seed's final-checkpoint rho (``after_rl``: per band run, setting -> rho), and the
    change from the base model's rho on the same problems, averaged over the band's seeds with a bootstrap 95% CI
    over seeds."""
    rhos: dict[str, dict[str, list[float]]] = {}
    for name in sorted(after_rl, key=lambda n: (BANDS.index(band_of_run(n)), n)):
        for setting, rho in after_rl[name].items():
            rhos.setdefault(band_of_run(name), {}).setdefault(setting, []).append(rho)
    out: dict[str, dict[str, BandCell]] = {}
    for band, cells in rhos.items():
        for setting, rho in cells.items():
            finite = [r for r in rho if np.isfinite(r)]
            mean = float(np.mean(finite)) if finite else float("nan")
            out.setdefault(band, {})[setting] = BandCell(
                rho, mean, bootstrap_mean([r - base_rho[setting] for r in finite])
            )
    return out


def study_run(run: Path, args: TraceLengthArgs) -> RunLengths:
    """Measure one run (rows cached in its trace_length/ directory: a rerun only re-summarises)."""
    layout = RunLayout(run)
    pre = read_json(layout.config)["stages"]["pretrain"]
    sets = settings(pre, args.loop_fracs)
    models = models_of(layout, args.band_runs)
    cache = layout.trace_length / "rows.json"
    key = {
        "per_setting": args.per_setting,
        "seed": args.seed,
        "settings": [s.name for s in sets],
        "models": {m: str(p) for m, p in models.items()},
    }
    cached = read_json(cache) if cache.exists() else {}
    if cached.get("key") != key:
        rows = []
        for name, path in tqdm(models.items(), desc="trace length: models"):
            model, tokenizer = load_hf(path, args.device), load_tokenizer(path)
            rows += [{"model": name, **row} for row in measure(model, tokenizer, sets, args.per_setting, args.seed)]
        write_json(cache, {"key": key, "rows": rows})
        cached = {"rows": rows}
    measured = [TraceRow(**r) for r in cached["rows"]]
    summaries = {m: summarise([r for r in measured if r.model == m], sets, args.n_boot, args.seed) for m in models}
    after_rl = {m: v for m, v in summaries.items() if m != "base"}
    rho = lambda summary: {s.setting: s.rho.mean for s in summary}  # noqa: E731
    bands = by_band(rho(summaries["base"]), {m: rho(v) for m, v in after_rl.items()})
    return RunLengths(
        str(run),
        task_of(pre).params,
        pre["k_train_max"],
        summaries["base"],
        after_rl,
        bands,
        [r for r in measured if r.model == "base"],
    )


def main(args: TraceLengthArgs) -> TraceLengthResult:
    """Measure the run (and ``also``), write trace_length.json and the figure, print the table."""
    for run in (args.run, *args.also):  # every run checked before anything is written
        if not RunLayout(run).base_eval.exists():
            raise RunDirError(f"{RunLayout(run).base}: no finished base model; run experiments.pretrain first")
    out = RunLayout(args.run).trace_length
    check_writable(out)
    init_run(args.run, "trace_length", args)
    result = TraceLengthResult([study_run(r, args) for r in (args.run, *args.also)])
    write_json(out / "trace_length.json", result.to_json())
    plot(result, out / "trace_length.png")
    for res in result.runs:
        print(f"{res.run} ({res.task['task']}, pretrained up to k = {res.k_train_max})")
        print(
            f"  {'setting':<16} {'n':>4} {'rho (95% CI)':>24} {'gap to in-dist (CI)':>28} {'length gen/right':>17} "
            f"{'valid':>6} {'acc':>5}"
        )
        for s in res.settings:
            rho, gap = s.rho, s.gap_to_in_distribution
            r = "constant" if s.constant_difficulty else f"{rho.mean:+.2f} [{rho.ci95[0]:+.2f}, {rho.ci95[1]:+.2f}]"
            g = (
                ""
                if s.axis == "none" or np.isnan(gap.mean)
                else f"{gap.mean:+.2f} [{gap.ci[0]:+.2f}, {gap.ci[1]:+.2f}]"
            )
            lengths = f"{s.mean_generated:.1f} / {s.mean_canonical:.1f}"
            print(
                f"  {s.setting:<16} {s.n:>4} {r:>24} {g:>28} {lengths:>17} {s.valid_trace_rate:>6.2f} "
                f"{s.accuracy:>5.2f}"
            )
        if res.by_band:
            names = [s.setting for s in res.settings if not s.constant_difficulty]
            print(
                "  after GRPO, rho of each band's runs (final checkpoints; mean over seeds, change from base [95% CI "
                "over seeds]):"
            )
            for band, cells in res.by_band.items():
                parts = [
                    f"{n}: {cells[n].mean:+.2f} ({cells[n].change.mean:+.2f} [{cells[n].change.ci95[0]:+.2f}, "
                    f"{cells[n].change.ci95[1]:+.2f}])"
                    for n in names
                ]
                print(f"    {band:<8}" + "  ".join(parts))
    return result


if __name__ == "__main__":
    cli.run(main, TraceLengthArgs, PRESETS)
