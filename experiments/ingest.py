"""Bring a GRPO run trained elsewhere into a run directory: ``python -m experiments.ingest --engine trl --path DIR
--run runs/NAME --band medium --seed 0``.

Reads the engine's checkpoint series (``experiments.harness.engines.runs``: TRL ``checkpoint-N``, verl
``global_step_N`` with a merged HF directory, or plain HF directories with step numbers in their names), checks
each speaks the run's vocabulary, and writes ``bands/<band>/seed<s>/`` as bandlens's own GRPO stage would:

* ``checkpoint-<step>/``: the checkpoint's HF files (weights, config, tokenizer), each with ``ingested.json``;
* ``metrics.jsonl``: the engine's logged metrics per step (TRL's ``reward`` as ``grpo/reward_mean``,
  ``frac_reward_zero_std`` as ``grpo/frac_zero_std`` …, the rest as ``engine/<name>``), and bandlens's own
  held-out evaluation of the base model (step 0) and of every checkpoint, with the GRPO stage's eval settings
  and seed streams (the engine's own eval, if any, is not what matching reads);
* ``ledger.jsonl``: one row per step and prompt from the engine's logged completions, keyed by problem id and
  re-read by bandlens's parser;
* ``ingested.json``: the engine, the source, the step unit and the checkpoints.

From then on ``experiments.band_study`` treats the run like its own, except that it never trains or replays
it: matching uses the evaluated checkpoints only. A rerun skips checkpoints already copied (the evaluations, cheap
and deterministic, are redone) and picks up checkpoints the engine wrote since.
"""

import dataclasses
import shutil
from pathlib import Path

from tqdm.auto import tqdm

from experiments import grpo
from experiments.harness import cli
from experiments.harness.engines import runs as er
from experiments.harness.engines.formats import Verifier
from experiments.harness.rundir import atomic_dir, init_run, write_json, write_jsonl
from probes.bands import BANDS
from probes.layout import INGESTED, LEDGER, METRICS, RunDirError, RunLayout, checkpoint_dir, read_json
from probes.models import load_hf, load_tokenizer


@dataclasses.dataclass(frozen=True)
class IngestArgs:
    """Ingest another engine's checkpoint series (and its logs) as one band run of a bandlens run directory."""

    engine: str = "trl"
    """trl (checkpoint-N), verl (global_step_N with a merged HF directory) or hf (HF folders named with steps)."""
    path: Path = Path("trl_runs/medium/seed0")
    """The engine's output directory (TRL's output_dir, verl's checkpoint dir, or the folder of HF checkpoints)."""
    run: Path = Path("runs/default")
    """The bandlens run whose base model the engine trained from (base/ and bands/table.json)."""
    logs: str = ""
    """Per-response logs for the ledger (empty: TRL's completions/ under --path; verl's trainer.rollout_data_dir must
    be named; none: no ledger)."""
    band: str = "medium"
    """Band whose pool the engine trained on."""
    seed: int = 0
    """Seed the run is filed under (bands/<band>/seed<seed>/) and evaluated with."""
    preset: str = "default"
    """experiments.grpo's preset whose evaluation settings (held-out samples per problem) the checkpoints get."""
    device: str = "cpu"
    """Torch device for the evaluations."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        if self.engine not in er.ENGINES:
            raise ValueError(f"engine: must be one of {', '.join(er.ENGINES)}, got {self.engine!r}")
        if self.band not in BANDS:
            raise ValueError(f"band: must be one of {', '.join(BANDS)}, got {self.band!r}")

    @property
    def grpo_args(self) -> grpo.GRPOArgs:
        """The band run's GRPO arguments: where it lives and how it is evaluated."""
        return cli.preset_args(
            grpo.GRPOArgs, grpo.PRESETS, self.preset, run=self.run, band=self.band, seed=self.seed, device=self.device
        )


PRESETS: dict[str, dict] = {"default": {}, "smoke": {}, "gpu": dict(device="cuda")}


def copy_checkpoint(src: Path, dest: Path, record: dict) -> None:
    """The HF files of one checkpoint (no optimizer or RNG state), marked as ingested."""
    with atomic_dir(dest) as tmp:
        for f in src.iterdir():
            if f.is_file() and (
                f.suffix in (".json", ".safetensors", ".jinja", ".txt", ".model") or f.name == "tokenizer.json"
            ):
                shutil.copy2(f, tmp / f.name)
        write_json(tmp / INGESTED, record)


def recorded_eval_samples(layout: RunLayout, but: str) -> dict[str, int]:
    """Held-out samples per problem of every band run the run's config records (trained here or ingested), but one."""
    stages = read_json(layout.config).get("stages", {}) if layout.config.exists() else {}
    samples = {name: rec["eval_samples"] for name, rec in stages.items() if name.startswith("grpo/")}
    for name, rec in stages.items():
        if name.startswith("ingest/"):
            samples[name] = cli.preset_args(grpo.GRPOArgs, grpo.PRESETS, rec["preset"]).eval_samples
    return {name: n for name, n in samples.items() if name != but}


def main(args: IngestArgs) -> Path:
    """Copy, evaluate and log the series; returns the band run's directory."""
    layout, gargs = RunLayout(args.run), args.grpo_args
    if not layout.band_table.exists() or not layout.base.exists():
        raise RunDirError(f"{args.run}: needs base/ and bands/table.json (the run the engine trained from)")
    others = recorded_eval_samples(layout, f"ingest/{args.band}/seed{args.seed}")
    if others and set(others.values()) != {gargs.eval_samples}:
        name, n = next((k, v) for k, v in others.items() if v != gargs.eval_samples)
        raise RunDirError(
            f"{args.run}: {name} was evaluated with {n} samples per problem, --preset {args.preset} gives "
            f"{gargs.eval_samples}; ingest with the preset the run's other band runs used"
        )
    out = gargs.out
    if (out / METRICS).exists() and not (out / INGESTED).exists():
        raise RunDirError(f"{out}: holds a run bandlens trained; ingest into another --seed or --band")
    spec = er.verifier_spec(args.run)
    series = er.checkpoint_series(args.engine, args.path)
    read_vocab = lambda d: (t := load_tokenizer(d)).convert_ids_to_tokens(list(range(len(t))))  # noqa: E731
    for ckpt in series.values():
        er.check_vocabulary(ckpt, spec["vocab"], read_vocab)
    init_run(args.run, f"ingest/{args.band}/seed{args.seed}", args)
    source = {"engine": args.engine, "source": str(Path(args.path).resolve()), "step_unit": er.STEP_UNITS[args.engine]}
    for step, ckpt in tqdm(series.items(), desc=f"ingest {args.engine} {args.band} s{args.seed}"):
        if not (checkpoint_dir(out, step) / INGESTED).is_file():
            copy_checkpoint(ckpt, checkpoint_dir(out, step), {**source, "step": step, "from": str(ckpt.resolve())})
    inputs = grpo.RunInputs.read(gargs)
    base = load_hf(layout.base, args.device)
    evals = {0: grpo.evaluate(base, load_tokenizer(layout.base), gargs, inputs, base)}
    for step in series:
        ckpt = checkpoint_dir(out, step)
        evals[step] = grpo.evaluate(load_hf(ckpt, args.device), load_tokenizer(ckpt), gargs, inputs, base)
    logged = {r["step"]: r for r in (er.trl_log(args.path, series[max(series)]) if args.engine == "trl" else [])}
    rows = [{**logged.get(s, {}), "step": s, **evals.get(s, {})} for s in sorted({0, *logged, *evals})]
    write_jsonl(out / METRICS, rows)
    verifier = Verifier(spec)
    problems = {" ".join(p.prompt_words()): p for p in inputs.pool}
    write_jsonl(
        out / LEDGER, er.ledger(er.completion_rows(args.engine, Path(args.logs or args.path)), problems, verifier.words)
    )
    write_json(
        out / INGESTED,
        {
            **source,
            "checkpoints": {str(s): str(p.resolve()) for s, p in series.items()},
            "logged_steps": len(logged),
            "ledger": (out / LEDGER).stat().st_size > 0,
        },
    )
    print(
        f"{out}: {len(series)} {args.engine} checkpoints (steps {min(series)}..{max(series)}), {len(logged)} logged "
        "steps"
    )
    return out


if __name__ == "__main__":
    cli.run(main, IngestArgs, PRESETS)
