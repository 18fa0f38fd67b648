"""Export a run's bands for another RL engine: ``python -m experiments.export --run runs/NAME --format trl --out DIR``.

Writes, under ``--out``:

* ``model/``: the run's base model as an HF directory, its tokenizer given a chat template that renders a user
  message as the bare prompt text (``engine_formats.CHAT_TEMPLATE``);
* ``trl/train_<band>.jsonl`` and ``trl/eval.jsonl`` (``--format trl``), or ``verl/train_<band>.parquet`` and
  ``verl/eval.parquet`` (``--format verl``): one row per problem of each band's pool and of the shared held-out
  set (``experiments.harness.engines.formats``);
* ``reward_trl.py`` / ``reward_verl.py``: the engine's reward, calling bandlens's own verifier, with
  ``bandlens_task.json`` beside it (the task, the vocabulary, the completion limit);
* ``trl_grpo.py`` / ``verl_grpo.sh``: launch files with bandlens's GRPO settings (``--steps`` ... below, whose
  defaults and presets are ``experiments.grpo``'s);
* ``bandlens_export.json``: what was exported from where.

An existing ``--out`` is refused unless it is empty or an export of the same run (then the files of the asked
format are written again, atomically, beside what is there): exporting one run for both engines into one
directory shares its model and sidecar. Nothing is written into the run.
"""

import dataclasses
import shutil
from pathlib import Path
from typing import Literal

from experiments.harness import cli
from experiments.harness.engines import formats as ef
from experiments.harness.engines import launch as el
from experiments.harness.engines.runs import verifier_spec
from experiments.harness.rundir import (
    atomic_dir,
    check_writable,
    git_sha,
    package_versions,
    resolved,
    write_json,
    write_text,
)
from experiments.harness.tasks.registry import task_of, with_families
from probes.bands import BANDS
from probes.layout import RunDirError, RunLayout, read_json
from probes.models import load_tokenizer

MANIFEST = "bandlens_export.json"


@dataclasses.dataclass(frozen=True)
class ExportArgs:
    """A run's band pools and eval set, base model, reward and launch files for TRL or verl."""

    run: Path = Path("runs/default")
    """Run directory with base/ and bands/table.json."""
    out: Path = Path("export")
    """Export directory: new, empty, or an earlier export of the same run."""
    format: Literal["trl", "verl"] = "trl"
    """Engine to export for: trl (JSON lines, a GRPOTrainer script) or verl (parquet, a main_ppo command line)."""
    preset: str = "default"
    """Named defaults, experiments.grpo's (smoke, default, gpu; for mazes maze-smoke, maze, maze-gpu)."""
    bands: tuple[str, ...] = BANDS
    """Bands whose training pools are exported (the eval set always is)."""
    steps: int = 60
    """Policy updates the launch files run."""
    prompts_per_step: int = 16
    """Distinct prompts per update."""
    group_size: int = 8
    """Completions sampled per prompt (TRL's num_generations, verl's rollout.n)."""
    lr: float = 1e-4
    """AdamW learning rate (no weight decay)."""
    clip_eps: float = 0.2
    """PPO ratio clip."""
    checkpoint_every: int = 10
    """Steps between the engine's checkpoints."""
    seed: int = 0
    """The launch files' default seed."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        if self.format not in ef.FORMATS:
            raise ValueError(f"format: must be one of {', '.join(ef.FORMATS)}, got {self.format!r}")
        if not self.bands or set(self.bands) - set(BANDS) or len(set(self.bands)) != len(self.bands):
            raise ValueError(f"bands: must be distinct members of {BANDS}, got {self.bands}")
        for name in ("steps", "prompts_per_step", "group_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2:
            raise ValueError(f"group_size: GRPO needs >= 2 completions per prompt, got {self.group_size}")
        if self.format == "verl" and not ef.has_pyarrow():
            raise ValueError("format: verl writes parquet, which needs pyarrow (pip install pyarrow)")


_GPU = dict(steps=200, prompts_per_step=64, group_size=16, checkpoint_every=20)
PRESETS: dict[str, dict] = with_families(
    "export",
    {
        "default": {},
        "smoke": dict(steps=8, prompts_per_step=8, group_size=8, lr=3e-4, checkpoint_every=2),
        "gpu": _GPU,
    },
)
"""experiments.grpo's presets, restricted to the fields an export sets (tests/stages/test_export.py keeps them
equal; a stage imports no other stage)."""


def check_out(out: Path, run: Path) -> None:
    """Refuse an --out that holds anything but an earlier export of this run (before anything is written)."""
    check_writable(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise RunDirError(f"{out}: exists and is not a directory; choose a new --out")
    if not any(out.iterdir()):
        return
    manifest = out / MANIFEST
    if not manifest.is_file() or read_json(manifest).get("run") != str(run.resolve()):
        raise RunDirError(f"{out}: not empty and not an export of {run}; choose a new --out or delete it")


def export_model(base: Path, tokenizer, dest: Path) -> None:
    """Copy the base model dir and give its tokenizer the bare-prompt chat template."""
    with atomic_dir(dest) as tmp:
        shutil.copytree(base, tmp, dirs_exist_ok=True)
        tokenizer.chat_template = ef.CHAT_TEMPLATE
        tokenizer.save_pretrained(tmp)


def launch(args: ExportArgs, splits: dict[str, list[ef.Item]], max_completion_length: int) -> el.Launch:
    return el.Launch(
        run=str(args.run),
        bands=args.bands,
        steps=args.steps,
        prompts_per_step=args.prompts_per_step,
        group_size=args.group_size,
        lr=args.lr,
        clip_eps=args.clip_eps,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        max_prompt_length=max(len(it.prompt.split()) for rows in splits.values() for it in rows),
        max_completion_length=max_completion_length,
    )


def main(args: ExportArgs) -> Path:
    """Write the export; returns its directory."""
    layout = RunLayout(args.run)
    if not layout.band_table.exists():
        raise RunDirError(f"{layout.band_table}: missing; run experiments.bands first")
    check_out(args.out, args.run)
    verifier = verifier_spec(args.run)
    task = task_of(verifier["task"])
    splits = ef.items(read_json(layout.band_table), task, args.bands)
    export_model(layout.base, load_tokenizer(layout.base), args.out / "model")
    write_json(args.out / ef.TASK_FILE, verifier)
    spec = launch(args, splits, verifier["max_completion_length"])
    if args.format == "trl":
        ef.write_trl(args.out / "trl", splits)
        write_text(args.out / "reward_trl.py", ef.REWARD_TRL)
        write_text(args.out / "trl_grpo.py", el.trl_script(spec))
    else:
        ef.write_verl(args.out / "verl", splits, task)
        write_text(args.out / "reward_verl.py", ef.REWARD_VERL)
        write_text(args.out / "verl_grpo.sh", el.verl_script(spec))
        (args.out / "verl_grpo.sh").chmod(0o755)
    manifest = args.out / MANIFEST
    before = read_json(manifest) if manifest.is_file() else {}
    formats = sorted({*before.get("formats", []), args.format})
    record = {
        "run": str(args.run.resolve()),
        "formats": formats,
        args.format: resolved(args),
        "git_sha": git_sha(),
        "versions": package_versions(),
    }
    write_json(manifest, {**before, **record})
    print(
        f"{args.out}: {args.format} export of {args.run} ({', '.join(f'{s} {len(r)}' for s, r in splits.items())} "
        "problems)"
    )
    return args.out


if __name__ == "__main__":
    cli.run(main, ExportArgs, PRESETS)
