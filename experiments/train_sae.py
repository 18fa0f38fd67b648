"""Train a sparse autoencoder on one checkpoint's activations at one hook, and evaluate it.

``python -m experiments.train_sae --run runs/NAME --arch {batchtopk,matryoshka,temporal}
[--hook blocks.1.hook_resid_post] [--checkpoint DIR] [--transfer DIR ...]`` writes
``runs/NAME/sae/<name>/``: the SAE in sae_lens format (cfg.json + sae_weights.safetensors),
train.json (training time and throughput) and evals.json (reconstruction, sparsity,
spliced task accuracy and next-token loss vs clean and zero/mean ablation, the same on
each --transfer checkpoint, and timing).

The checkpoint is read through ``experiments.harness.reading.sources``: its probe set and activation
cache are made once and reused by every SAE on that (checkpoint, hook).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Literal

import torch

from experiments.harness import cli
from experiments.harness.reading.probe_sets import ProbeSetSpec, eval_problems
from experiments.harness.reading.sources import Source, SourceSpec, open_source
from experiments.harness.rundir import atomic_dir, check_writable, init_run, write_json
from experiments.harness.tasks.registry import run_task, with_families
from experiments.harness.training.rollout import greedy_accuracy
from probes.layout import SAE_EVALS, SAE_TRAIN, RunLayout, read_json
from probes.models import CheckpointError
from probes.saes.eval import (
    activation_mean,
    constant_replacement,
    high_level_width,
    next_token_loss,
    reconstruction_stats,
    recovered,
    sae_replacement,
    spliced,
)
from probes.saes.train import SAESpec, TrainSpec, build_sae, data_provider, load_sae, save_sae, train_sae

SHAPE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
"""config.json keys that must agree for an SAE to transfer between checkpoints."""


@dataclasses.dataclass(frozen=True)
class TrainSAEArgs:
    """Train a sparse autoencoder (sae_lens) on a checkpoint's activations and evaluate it."""

    run: Path = Path("runs/default")
    """Run directory; the SAE lands in <run>/sae/<name>/."""
    preset: str = "default"
    """Named defaults (smoke, default, gpu; for mazes maze-smoke, maze, maze-gpu); explicit flags override them."""
    arch: Literal["batchtopk", "matryoshka", "temporal"] = "batchtopk"
    """SAE architecture: BatchTopK, Matryoshka BatchTopK, or temporal (T-SAE: Matryoshka + InfoNCE)."""
    hook: str = "blocks.1.hook_resid_post"
    """TransformerLens hook name whose activations the SAE reads."""
    checkpoint: str = ""
    """HF checkpoint directory to train on; empty means <run>/base."""
    name: str = ""
    """SAE directory name under <run>/sae/; empty means <arch>-<hook>."""
    transfer: tuple[str, ...] = ()
    """Other checkpoints of the same architecture to evaluate the SAE on."""
    seed: int = 0
    """Seeds the probe problems, the sampled completions, SAE initialisation and batch order."""
    k_min: int = 1
    """Shortest chain in the probe set."""
    k_max: int = 10
    """Longest chain in the probe set (the default: every chain length the bands hold)."""
    per_k: int = 200
    """Probe problems per k (every 5th goes to the eval split)."""
    n_samples: int = 2
    """Own completions sampled per probe problem (besides the canonical trace and direct answer)."""
    d_sae: int = 512
    """Number of latents (4 x d_model: wider SAEs left more latents dead on this small task)."""
    top_k: float = 16.0
    """Mean active latents per token (BatchTopK k)."""
    high_level_frac: float = 0.2
    """First Matryoshka level (T-SAE high-level prefix) as a fraction of d_sae."""
    contrastive_coef: float = 0.1
    """T-SAE InfoNCE weight."""
    contrastive_temperature: float = 0.1
    """T-SAE InfoNCE temperature."""
    aux_loss_coef: float = 1.0
    """Weight of the auxiliary loss that revives dead latents."""
    threshold_lr: float = 0.01
    """EMA rate of the BatchTopK threshold saved as the JumpReLU threshold (raise it for runs of few steps)."""
    train_samples: int = 2_000_000
    """Activation rows the SAE trains on."""
    batch_size: int = 2048
    """Rows per SAE step."""
    lr: float = 2e-3
    """Adam learning rate (constant, linear decay over the last 20%)."""
    dead_window: int = 25
    """Steps without firing after which a latent is dead (and gets the auxiliary loss); 25 x 2048 rows is
    about one pass over the unique training tokens."""
    collect_batch_size: int = 256
    """Sequences per forward pass when collecting activations."""
    device: str = "cpu"
    """Torch device."""

    def __post_init__(self) -> None:
        cli.check_common(self)
        if "/" in self.sae_name or self.sae_name.startswith("."):
            raise ValueError(f"name: {self.sae_name!r} is not a plain directory name")
        self.source_spec, self.sae_spec, self.train_spec  # noqa: B018 -- validate the derived specs now

    @property
    def sae_name(self) -> str:
        return self.name or f"{self.arch}-{self.hook}"

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.checkpoint) if self.checkpoint else RunLayout(self.run).base

    @property
    def source_spec(self) -> SourceSpec:
        return SourceSpec(self.run, self.hook, self.probe_spec, self.collect_batch_size, self.device)

    @property
    def probe_spec(self) -> ProbeSetSpec:
        return ProbeSetSpec(
            seed=self.seed, k_min=self.k_min, k_max=self.k_max, per_k=self.per_k, n_samples=self.n_samples
        )

    @property
    def sae_spec(self) -> SAESpec:
        return cli.spec_of(SAESpec, self)

    @property
    def train_spec(self) -> TrainSpec:
        return TrainSpec(self.train_samples, self.batch_size, self.lr, self.dead_window, self.device, self.seed)


_SMOKE = dict(
    hook="blocks.0.hook_resid_post",
    k_max=4,
    per_k=10,
    n_samples=1,
    d_sae=64,
    top_k=4.0,
    train_samples=16_384,
    batch_size=512,
    dead_window=8,
    threshold_lr=0.1,
    collect_batch_size=64,
)
_GPU = dict(
    per_k=1000, n_samples=8, d_sae=2048, top_k=20.0, train_samples=30_000_000, batch_size=8192, lr=1e-3, device="cuda"
)
PRESETS: dict[str, dict] = with_families(
    "train_sae",
    {
        "default": {},
        "smoke": _SMOKE,
        "gpu": _GPU,
    },
)


def check_same_shape(a: Path, b: Path) -> None:
    """An SAE transfers only between checkpoints of one architecture."""
    ca, cb = (read_json(p / "config.json") for p in (a, b))
    diff = {k: (ca.get(k), cb.get(k)) for k in SHAPE_KEYS if ca.get(k) != cb.get(k)}
    if diff:
        raise CheckpointError(f"{b}: not the architecture of {a} ({diff})")


def splice_metrics(sae, src: Source, args: TrainSAEArgs) -> dict[str, float]:
    """Task accuracy and next-token loss: clean, SAE-spliced, zero- and mean-ablated at the hook."""
    mean_D = activation_mean(src.cache, src.cache.rows("train", unique=False))
    conditions = {
        "clean": None,
        "sae": sae_replacement(sae),
        "zero": constant_replacement(torch.zeros_like(mean_D)),
        "mean": constant_replacement(mean_D),
    }
    evals = [s for s in src.sequences if s.split == "eval"]
    problems = eval_problems(args.probe_spec, run_task(args.run, src.tokenizer.get_vocab()))
    out: dict[str, float] = {}
    for name, fn in conditions.items():
        with spliced(src.bridge, args.hook, fn):
            out[f"splice/ce_{name}"] = next_token_loss(
                src.bridge, [s.token_ids for s in evals], [s.n_prompt for s in evals], pad_id=src.tokenizer.pad_token_id
            )
            acc, delib = greedy_accuracy(src.bridge.original_model, src.tokenizer, problems)
        out[f"splice/acc_{name}"], out[f"splice/deliberate_rate_{name}"] = acc, delib
    for ref in ("zero", "mean"):
        out[f"splice/ce_recovered_{ref}"] = recovered(
            out["splice/ce_clean"], out["splice/ce_sae"], out[f"splice/ce_{ref}"]
        )
    return out


def evaluate(sae, src: Source, args: TrainSAEArgs) -> dict[str, float]:
    """Every quality metric of ``sae`` on one checkpoint (held-out problems only)."""
    stats = reconstruction_stats(
        sae, src.cache, src.cache.rows("eval"), high_width=high_level_width(sae, args.high_level_frac)
    )
    return {**stats.metrics("sae"), **splice_metrics(sae, src, args)}


def train_and_save(args: TrainSAEArgs, src: Source, sae_dir: Path) -> dict:
    """Fit the SAE on the train split and write it (sae_lens format) with train.json, atomically."""
    torch.manual_seed(args.seed)
    meta = {"model_name": str(src.checkpoint.resolve()), "hook_name": args.hook, "prepend_bos": True}
    sae = build_sae(args.sae_spec, src.cache.d_model, meta, device=args.device, seed=args.seed)
    result = train_sae(sae, data_provider(args.sae_spec, src.cache, args.train_spec), args.train_spec)
    record = {
        "timing/sae_train_s": result.seconds,
        "timing/sae_train_samples_per_s": result.samples_per_s,
        "sae/train_samples": result.n_samples,
        "sae/train_dead_frac": result.train_dead_frac,
    }
    with atomic_dir(sae_dir) as tmp:
        save_sae(result.sae, tmp)
        write_json(tmp / SAE_TRAIN, record)
    return record


def format_table(columns: dict[str, dict[str, float]]) -> str:
    """Metrics as rows, one column per checkpoint (missing cells blank)."""
    keys = [k for k in next(iter(columns.values())) if "fve_by_role" not in k]
    names = ["/".join(Path(c).parts[-2:]) for c in columns]
    lines = [f"{'':<34} " + " ".join(f"{n[-12:]:>12}" for n in names)]
    for k in keys:
        cells = [f"{col[k]:>12.4f}" if k in col else " " * 12 for col in columns.values()]
        lines.append(f"{k:<34} " + " ".join(cells))
    return "\n".join(lines)


def main(args: TrainSAEArgs) -> dict:
    """Train (or resume) the SAE, then write and print evals.json; returns its content."""
    check_writable(args.run)
    init_run(args.run, f"sae/{args.sae_name}", args)
    sae_dir = RunLayout(args.run).sae(args.sae_name)
    if (sae_dir / SAE_EVALS).is_file():
        print(f"{sae_dir / SAE_EVALS} exists: SAE already trained and evaluated")
        return read_json(sae_dir / SAE_EVALS)
    for other in args.transfer:
        check_same_shape(args.checkpoint_dir, Path(other))
    src = open_source(args.source_spec, args.checkpoint_dir)
    record = read_json(sae_dir / SAE_TRAIN) if (sae_dir / "cfg.json").is_file() else train_and_save(args, src, sae_dir)
    sae = load_sae(sae_dir, device=args.device)
    start = time.perf_counter()
    metrics = evaluate(sae, src, args)
    eval_s = time.perf_counter() - start
    transfer = {other: evaluate(sae, open_source(args.source_spec, Path(other)), args) for other in args.transfer}
    produce_s = src.probe_set_s + src.activations_s
    timing = {
        "timing/probe_set_s": src.probe_set_s,
        "timing/activations_s": src.activations_s,
        "timing/eval_s": eval_s,
        "timing/transfer_s": time.perf_counter() - start - eval_s,
        **{k: v for k, v in record.items() if k.startswith("timing/")},
        "timing/activation_share": produce_s / (produce_s + record["timing/sae_train_s"]),
    }
    evals = {
        "sae": {
            "name": args.sae_name,
            "arch": args.arch,
            "hook_name": args.hook,
            "checkpoint": str(args.checkpoint_dir),
        },
        "metrics": {**metrics, **{k: v for k, v in record.items() if not k.startswith("timing/")}},
        "timing": timing,
        "transfer": transfer,
    }
    write_json(sae_dir / SAE_EVALS, evals)
    m = evals["metrics"]
    print(
        f"{args.sae_name}: FVE {m['sae/fve']:.3f}, L0 {m['sae/l0']:.1f}, dead {m['sae/dead_frac']:.2f}, spliced "
        f"accuracy {m['splice/acc_sae']:.3f} (clean {m['splice/acc_clean']:.3f}); every metric in {sae_dir / SAE_EVALS}"
    )
    if transfer:  # asked for by --transfer: the checkpoints side by side
        print(format_table({"trained on": {**m, **timing}, **transfer}))
    return evals


if __name__ == "__main__":
    cli.run(main, TrainSAEArgs, PRESETS)
