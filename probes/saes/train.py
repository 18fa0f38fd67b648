"""SAE training through sae_lens: data providers over an activation cache, SAETrainer, save/load.

Three architectures, all sae_lens ``TrainingSAE`` classes driven by sae_lens's own
``SAETrainer`` (no copied loop):

* ``batchtopk``  — BatchTopK (the default);
* ``matryoshka`` — Matryoshka BatchTopK with nested levels (first level = ``high_level_frac``);
* ``temporal``   — the T-SAE of ``probes.saes.tsae``: the same Matryoshka levels plus InfoNCE on
  the first level's codes of adjacent tokens, fed (t-1, t) pair batches.

Dead latents: every architecture carries sae_lens's top-k auxiliary loss (dead latents
reconstruct the live latents' residual), with "dead" meaning no firing for
``dead_window`` steps; the dead fraction after training is measured by ``probes.saes.eval``.

Saved SAEs are sae_lens inference SAEs (BatchTopK variants become JumpReLU with the
learned threshold), loadable with ``sae_lens.SAE.load_from_disk``; the metadata records
the hook name, the model, and the high-level width.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import time
import unittest.mock
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from einops import rearrange
from jaxtyping import Float, Int
from sae_lens import SAE, BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.saes.matryoshka_batchtopk_sae import MatryoshkaBatchTopKTrainingSAE, MatryoshkaBatchTopKTrainingSAEConfig
from sae_lens.saes.sae import SAEMetadata, TrainingSAE
from sae_lens.training import sae_trainer
from sae_lens.training.sae_trainer import SAETrainer
from safetensors import SafetensorError
from torch import Tensor
from tqdm.auto import tqdm

from probes.activations import ActivationCache
from probes.models import CheckpointError
from probes.saes import crosscoder, tsae

Arch = Literal["batchtopk", "matryoshka", "temporal"]
ARCHS: tuple[Arch, ...] = ("batchtopk", "matryoshka", "temporal")


@dataclasses.dataclass(frozen=True)
class SAESpec:
    """Shape and losses of one SAE."""

    arch: Arch = "batchtopk"
    d_sae: int = 512
    top_k: float = 16.0
    """Mean active latents per token (BatchTopK's k)."""
    high_level_frac: float = 0.2
    """Width of the first Matryoshka level (the T-SAE's high-level prefix) as a fraction of d_sae."""
    contrastive_coef: float = 0.1
    """T-SAE InfoNCE weight."""
    contrastive_temperature: float = 0.1
    """T-SAE InfoNCE temperature."""
    aux_loss_coef: float = 1.0
    """Weight of the top-k auxiliary loss that revives dead latents."""
    threshold_lr: float = 0.01
    """EMA rate of the BatchTopK threshold that becomes the saved JumpReLU threshold (sae_lens's
    default 0.01 needs a few hundred steps to settle)."""

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch: must be one of {ARCHS}, got {self.arch!r}")
        if not 0 < self.top_k <= self.d_sae:
            raise ValueError(f"top_k: must lie in (0, d_sae], got {self.top_k}")
        if not 0 < self.threshold_lr <= 1:
            raise ValueError(f"threshold_lr: must lie in (0, 1], got {self.threshold_lr}")
        if not 0 < self.high_level_width < self.d_sae:
            raise ValueError(f"high_level_frac: {self.high_level_frac} gives no proper prefix of {self.d_sae}")

    @property
    def high_level_width(self) -> int:
        return round(self.high_level_frac * self.d_sae)


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """How long and how fast to train."""

    n_samples: int = 2_000_000
    """Activation rows fed to the SAE (pairs count twice)."""
    batch_size: int = 2048
    """Rows per step (a T-SAE step holds batch_size/2 pairs)."""
    lr: float = 2e-3
    dead_window: int = 25
    """Steps without firing after which a latent counts as dead for the auxiliary loss."""
    device: str = "cpu"
    seed: int = 0
    chunk_rows: int = 1 << 17
    """Rows read from the cache at once; bounds the provider's memory."""

    def __post_init__(self) -> None:
        if self.batch_size < 2 or self.batch_size % 2:
            raise ValueError(f"batch_size: must be even and >= 2, got {self.batch_size}")
        if self.n_samples < self.batch_size:
            raise ValueError(f"n_samples: {self.n_samples} is below one batch ({self.batch_size})")


@dataclasses.dataclass(frozen=True)
class TrainResult:
    sae: TrainingSAE
    seconds: float
    """Wall time of SAETrainer.fit (SAE steps and reading batches from the cache)."""
    n_samples: int
    samples_per_s: float
    train_dead_frac: float
    """Fraction of latents the trainer counted dead (no firing in the last dead_window steps)."""


def _chunks(rows_R: Int[np.ndarray, " R"], chunk_rows: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless epochs of sorted row chunks in random order (contiguous reads, bounded memory)."""
    if len(rows_R) == 0:
        raise ValueError("no rows to train on")
    rows_R = np.sort(rows_R)
    starts = np.arange(0, len(rows_R), chunk_rows)
    while True:
        for lo in rng.permutation(starts):
            yield rows_R[lo : lo + chunk_rows]


def _rebatch(chunks: Iterator[Tensor], batch_size: int, rng: np.random.Generator) -> Iterator[Tensor]:
    """Shuffle within each chunk and cut batches along dim 0, carrying the remainder over."""
    carry = None
    for chunk in chunks:
        chunk = chunk[torch.from_numpy(rng.permutation(len(chunk)))]
        buf = chunk if carry is None else torch.cat([carry, chunk])
        n_full = len(buf) // batch_size * batch_size
        for lo in range(0, n_full, batch_size):
            yield buf[lo : lo + batch_size]
        carry = buf[n_full:]


def token_batches(
    cache: ActivationCache, rows_R: Int[np.ndarray, " R"], batch_size: int, *, seed: int, chunk_rows: int = 1 << 17
) -> Iterator[Float[Tensor, "B D"]]:
    """Endless shuffled batches of single activation rows: the ``Iterator[Tensor]`` sae_lens trains on."""
    rng = np.random.default_rng(seed)
    loaded = (torch.from_numpy(np.asarray(cache.acts_ND[idx])) for idx in _chunks(rows_R, chunk_rows, rng))
    return _rebatch(loaded, batch_size, rng)


def pair_batches(
    cache: ActivationCache, rows_R: Int[np.ndarray, " R"], batch_size: int, *, seed: int, chunk_rows: int = 1 << 17
) -> Iterator[Float[Tensor, "two_B D"]]:
    """Endless batches of (t-1, t) pairs for rows t in ``rows_R``, laid out ``(two B) D``."""
    rng = np.random.default_rng(seed)
    loaded = (
        torch.from_numpy(np.stack([cache.acts_ND[idx - 1], cache.acts_ND[idx]], axis=1))
        for idx in _chunks(rows_R, chunk_rows // 2, rng)
    )
    for pairs_B2D in _rebatch(loaded, batch_size // 2, rng):
        yield rearrange(pairs_B2D, "B two D -> (two B) D")


def _batchtopk_fields(spec: SAESpec, d_in: int, meta: SAEMetadata, device: str) -> dict:
    """The config fields every BatchTopK variant here shares."""
    return dict(
        d_in=d_in,
        d_sae=spec.d_sae,
        k=spec.top_k,
        aux_loss_coefficient=spec.aux_loss_coef,
        topk_threshold_lr=spec.threshold_lr,
        normalize_activations="expected_average_only_in",
        device=device,
        metadata=meta,
    )


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Torch's global generators seeded for the block and restored after it. sae_lens initialises and trains from
    them, so without this a dictionary would depend on whatever drew from them earlier in the process (a resumed
    study would train other dictionaries than an uninterrupted one)."""
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_available() else []):
        torch.manual_seed(seed)
        yield


def build_crosscoder(
    spec: SAESpec, d_model: int, metadata: dict, device: str = "cpu", seed: int = 0
) -> crosscoder.CrosscoderTrainingSAE:
    """A freshly initialised crosscoder over two models of width ``d_model`` (rows ``[a_base | a_tuned]``), its
    initialisation drawn from ``seed``; ``spec.arch`` is ignored: a crosscoder is BatchTopK."""
    crosscoder.register()
    meta = SAEMetadata(**metadata, dictionary="crosscoder")
    fields = _batchtopk_fields(spec, len(crosscoder.MODELS) * d_model, meta, device)
    with seeded(seed):
        return crosscoder.CrosscoderTrainingSAE(crosscoder.CrosscoderTrainingSAEConfig(**fields))


def tensor_batches(rows_NW: Float[Tensor, "N W"], batch_size: int, *, seed: int) -> Iterator[Float[Tensor, "B W"]]:
    """Endless shuffled batches over rows held in memory (a diffing dictionary's paired rows)."""
    if len(rows_NW) == 0:
        raise ValueError("no rows to train on")
    rng = np.random.default_rng(seed)
    return _rebatch(iter(lambda: rows_NW, None), batch_size, rng)


def build_sae(spec: SAESpec, d_in: int, metadata: dict, device: str = "cpu", seed: int = 0) -> TrainingSAE:
    """A freshly initialised sae_lens training SAE, its initialisation drawn from ``seed``; ``metadata`` lands in
    its saved config."""
    levels = {} if spec.arch == "batchtopk" else {"high_level_width": spec.high_level_width}
    common = _batchtopk_fields(spec, d_in, SAEMetadata(**metadata, **levels), device)
    widths = [spec.high_level_width, spec.d_sae]
    with seeded(seed):
        if spec.arch == "batchtopk":
            return BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(**common))
        if spec.arch == "matryoshka":
            return MatryoshkaBatchTopKTrainingSAE(
                MatryoshkaBatchTopKTrainingSAEConfig(**common, matryoshka_widths=widths)
            )
        tsae.register()
        cfg = tsae.TemporalMatryoshkaTrainingSAEConfig(
            **common,
            matryoshka_widths=widths,
            contrastive_coefficient=spec.contrastive_coef,
            contrastive_temperature=spec.contrastive_temperature,
        )
        return tsae.TemporalMatryoshkaTrainingSAE(cfg)


def data_provider(spec: SAESpec, cache: ActivationCache, train: TrainSpec, split: str = "train") -> Iterator[Tensor]:
    """Token batches for plain SAEs, (t-1, t) pair batches for the T-SAE."""
    if spec.arch == "temporal":
        return pair_batches(
            cache, cache.pair_rows(split), train.batch_size, seed=train.seed, chunk_rows=train.chunk_rows
        )
    return token_batches(cache, cache.rows(split), train.batch_size, seed=train.seed, chunk_rows=train.chunk_rows)


def train_sae(sae: TrainingSAE, provider: Iterator[Tensor], train: TrainSpec) -> TrainResult:
    """Fit ``sae`` with sae_lens's SAETrainer (wandb off: nothing leaves the machine)."""
    steps = train.n_samples // train.batch_size
    warmup = min(100, steps // 10)
    cfg = SAETrainerConfig(
        total_training_samples=train.n_samples,
        train_batch_size_samples=train.batch_size,
        lr=train.lr,
        lr_end=train.lr,  # constant lr, then a linear decay to 0 over the last 20% of steps
        lr_warm_up_steps=warmup if warmup >= 2 else 0,
        lr_decay_steps=steps // 5,
        device=train.device,
        dead_feature_window=train.dead_window,
        feature_sampling_window=train.dead_window,
        n_batches_for_norm_estimate=20,
        logger=LoggingConfig(log_to_wandb=False),
    )
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=provider)
    start = time.perf_counter()
    # fit() draws its own "Training SAE" bar, which moves every 100 steps (so a short fit prints it at 0%); the
    # stages report each fitted dictionary in one line instead
    with seeded(train.seed), unittest.mock.patch.object(sae_trainer, "tqdm", functools.partial(tqdm, disable=True)):
        trainer.fit()
    seconds = time.perf_counter() - start
    dead = float(trainer.dead_neurons.float().mean())
    return TrainResult(sae, seconds, trainer.n_training_samples, trainer.n_training_samples / seconds, dead)


def save_sae(sae: TrainingSAE, out_dir: Path) -> None:
    """Write the inference SAE (cfg.json + sae_weights.safetensors) into ``out_dir``; cfg.json with sorted keys, so
    that one dictionary gives one file whatever order sae_lens builds its config in."""
    sae.save_inference_model(out_dir)
    cfg = Path(out_dir) / "cfg.json"
    cfg.write_text(json.dumps(json.loads(cfg.read_text()), indent=2, sort_keys=True) + "\n")


def load_sae(path: Path, device: str = "cpu") -> SAE:
    """Load with sae_lens's own loader; a missing or corrupt SAE is a CheckpointError naming the file."""
    path = Path(path)
    for name in ("cfg.json", "sae_weights.safetensors"):
        if not (path / name).is_file():
            raise CheckpointError(f"{path}: not a sae_lens SAE directory (missing {name})")
    try:
        return SAE.load_from_disk(path, device=device)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
        raise CheckpointError(
            f"{path / 'sae_weights.safetensors'}: cannot load SAE ({type(e).__name__}: {e})"
        ) from None


def check_sae_fits(sae: SAE, bridge, sae_dir: Path) -> None:
    """The SAE must read a hook the model has, with the model's width there."""
    hook = sae.cfg.metadata.hook_name
    if hook not in bridge.hook_dict:
        raise CheckpointError(f"{sae_dir / 'cfg.json'}: hook {hook!r} does not exist in this model")
    if sae.cfg.d_in != bridge.cfg.d_model:
        raise CheckpointError(
            f"{sae_dir / 'cfg.json'}: d_in {sae.cfg.d_in} != model width {bridge.cfg.d_model} at {hook}"
        )
