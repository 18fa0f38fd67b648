"""Difficulty bands relative to a model: pass rates from sampled completions, thresholds, pools.

``python -m experiments.bands --run runs/NAME`` measures every candidate problem's pass
rate under the base model (n completions at T = 1, free mode choice), labels it easy /
medium / hard, draws equal-size training pools per band, and does the same for one
fixed held-out eval set. Bands are about the *model*, not about k: the table reports
each band's k composition.

Default thresholds: hard = pass rate <= 1/8 (with n = 8: at most one lucky success —
the "Hard@8" regime where group-relative advantages come only from rare successes),
easy = pass rate >= 3/4, medium in between.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from experiments.harness import cli, seeds
from experiments.harness.rundir import init_run, write_json
from experiments.harness.tasks.family import Problem, Task
from experiments.harness.tasks.registry import run_task, with_families
from experiments.harness.training.rollout import sampled_completions
from probes.bands import BANDS, Band, band_of
from probes.layout import RunDirError, RunLayout, read_json
from probes.models import load_hf, load_tokenizer


@dataclasses.dataclass(frozen=True)
class BandArgs:
    """Measure pass rates under the base model and build equal-size band pools."""

    run: Path = Path("runs/default")
    """Run directory holding base/ (from experiments.pretrain)."""
    preset: str = "default"
    """Named defaults (smoke, default, gpu; for mazes maze-smoke, maze, maze-gpu)."""
    seed: int = 0
    """Seeds the candidate problems and the sampled completions."""
    candidates_per_k: int = 96
    """Candidate training problems drawn per k (k spans the base eval range)."""
    eval_per_k: int = 48
    """Held-out eval problems per k, shared by every band run."""
    n_samples: int = 32
    """Completions per problem used to estimate its pass rate (>= 8; with 8, a problem whose true pass
    rate is 0.25 is labelled hard 37% of the time, with 32 7%)."""
    hard_max: float = 1 / 8
    """A problem with pass rate <= hard_max is hard."""
    easy_min: float = 3 / 4
    """A problem with pass rate >= easy_min is easy; in between is medium."""
    pool_size: int = 64
    """Training problems per band (capped by the smallest band's count)."""
    device: str = "cpu"
    """Torch device the base model samples on (draws come from CPU generators: the same on every device)."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        for name in ("candidates_per_k", "eval_per_k", "pool_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.n_samples < 8:
            raise ValueError(f"n_samples: pass rates need >= 8 samples, got {self.n_samples}")
        if not 0 <= self.hard_max < self.easy_min <= 1:
            raise ValueError(
                f"hard_max/easy_min: need 0 <= hard_max < easy_min <= 1, got {self.hard_max}, {self.easy_min}"
            )


PRESETS: dict[str, dict] = with_families(
    "bands",
    {
        "default": {},
        "smoke": dict(candidates_per_k=24, eval_per_k=24, pool_size=8, n_samples=8),
        "gpu": dict(candidates_per_k=256, eval_per_k=128, n_samples=16, pool_size=256, device="cuda"),
    },
)


def pass_rates(model, tokenizer, problems: Sequence[Problem], n: int, seed: int, bar: tqdm | None = None) -> np.ndarray:
    """Fraction of n free-choice completions at T = 1 that are correct, per problem (``bar`` counts the samples)."""
    parsed = sampled_completions(
        model, tokenizer, problems, n, seed, on_batch=None if bar is None else lambda rows: bar.update(len(rows))
    )
    return np.array([[p.correct for p in ps] for ps in parsed], dtype=float).mean(1)


def draw_pools(bands: Sequence[Band], size: int, seed: int) -> dict[Band, list[int]]:
    """Equal-size pools: ``size`` indices per band, capped by the smallest band."""
    rng = seeds.rng("band_pools", seed)
    by_band = {b: [i for i, x in enumerate(bands) if x == b] for b in BANDS}
    for b, members in by_band.items():
        if not members:
            raise ValueError(f"band {b!r} is empty under this model: draw more candidates or change the thresholds")
    n = min(size, *(len(v) for v in by_band.values()))
    return {b: sorted(rng.choice(v, size=n, replace=False).tolist()) for b, v in by_band.items()}


def composition(records: Sequence[dict]) -> dict[str, dict[str, int]]:
    """Count of problems per k within each band."""
    return {
        b: dict(sorted(Counter(str(r["k"]) for r in records if r["band"] == b).items(), key=lambda kv: int(kv[0])))
        for b in BANDS
    }


def _labelled(model, tokenizer, problems, args: BandArgs, seed: int, bar: tqdm) -> list[dict]:
    rates = pass_rates(model, tokenizer, problems, args.n_samples, seed, bar)
    return [
        {**pr.as_record(), "pass_rate": float(r), "band": band_of(r, args.hard_max, args.easy_min)}
        for pr, r in zip(problems, rates)
    ]


def main(args: BandArgs) -> dict:
    """Write <run>/bands/table.json (pools, eval set, composition); returns it."""
    layout = RunLayout(args.run)
    if not layout.base_eval.exists():
        raise RunDirError(f"{layout.base}: no finished base model; run experiments.pretrain first")
    init_run(args.run, "bands", args)
    path = layout.band_table
    if path.exists():
        print(f"{path} exists: bands already measured")
        return read_json(path)
    task = run_task(args.run)
    ks = task.knobs(read_json(layout.config)["stages"]["pretrain"]["k_eval_max"])
    model, tokenizer = load_hf(layout.base, args.device), load_tokenizer(layout.base)
    candidates = [pr for k in ks for pr in seeds.problems("band_candidates", args.seed, k, args.candidates_per_k, task)]
    held_out = [pr for k in ks for pr in seeds.problems("band_eval", args.seed, k, args.eval_per_k, task)]
    total = (len(candidates) + len(held_out)) * args.n_samples
    with tqdm(
        total=total,
        desc=f"bands: pass rates of {len(candidates) + len(held_out)} problems x {args.n_samples}",
        unit="sample",
    ) as bar:
        cand = _labelled(model, tokenizer, candidates, args, seeds.band_candidates_sampling(args.seed), bar)
        evals = _labelled(model, tokenizer, held_out, args, seeds.band_eval_sampling(args.seed), bar)
    pools = draw_pools([r["band"] for r in cand], args.pool_size, args.seed)
    table = {
        "task": task.params,
        "thresholds": {"hard_max": args.hard_max, "easy_min": args.easy_min, "n_samples": args.n_samples},
        "pools": {b: [cand[i] for i in idx] for b, idx in pools.items()},
        "eval_set": evals,
        "composition": {"candidates": composition(cand), "eval_set": composition(evals)},
    }
    write_json(path, table)
    print(format_composition(table))
    return table


def format_composition(table: dict) -> str:
    lines = [f"pool size per band: {len(table['pools']['easy'])}", "candidates per band by k:"]
    for band, counts in table["composition"]["candidates"].items():
        lines.append(f"  {band:>6}: " + " ".join(f"k{k}:{n}" for k, n in counts.items()))
    return "\n".join(lines)


def remeasure(model_dir: Path, records: Sequence[dict], task: Task, n_samples: int, seed: int) -> dict[str, float]:
    """Pass rates of band-table records under another checkpoint (for band drift:
    feed the result to ``probes.bands.relabel`` and compare with the original labels)."""
    model, tokenizer = load_hf(model_dir), load_tokenizer(model_dir)
    problems = [task.from_record(r) for r in records]
    rates = pass_rates(model, tokenizer, problems, n_samples, seed)
    return {r["pid"]: float(x) for r, x in zip(records, rates)}


if __name__ == "__main__":
    cli.run(main, BandArgs, PRESETS)
