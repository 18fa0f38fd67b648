"""A checkpoint opened for reading: the model in a TransformerBridge, its labelled probe
set, and the activation cache at one hook.

The probe set (labelled sequences, including the checkpoint's own samples) and the
activation cache live in ``<run>/acts/<checkpoint>/probe-<digest>/[<hook>/]`` and are
reused by every reader of that (checkpoint, probe set, hook): activations are paid for once.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from experiments.harness.reading.probe_sets import ProbeSetSpec, build_probe_set
from experiments.harness.rundir import atomic_dir, atomic_file
from experiments.harness.tasks.registry import run_task
from probes.activations import (
    ActivationCache,
    LabelledSequence,
    cached_fingerprint,
    load_sequences,
    open_cache,
    save_sequences,
    sequences_digest,
    write_cache,
)
from probes.layout import RunLayout
from probes.models import load_bridge, load_tokenizer


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """What to read from a checkpoint, and where its caches live."""

    run: Path
    """Run directory whose acts/ holds the probe sets and activation caches."""
    hook: str
    """TransformerLens hook name whose activations are read."""
    probe: ProbeSetSpec
    """The labelled token sequences run through the model."""
    collect_batch_size: int = 256
    """Sequences per forward pass when collecting activations."""
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.collect_batch_size < 1:
            raise ValueError(f"collect_batch_size: must be >= 1, got {self.collect_batch_size}")


@dataclasses.dataclass(frozen=True)
class Source:
    """One checkpoint opened for reading, with its probe set and activation cache at the hook."""

    checkpoint: Path
    tokenizer: object
    sequences: list[LabelledSequence]
    cache: ActivationCache
    probe_set_s: float
    """Seconds spent building the probe set in this call (0 when it was on disk)."""
    activations_s: float
    """Seconds spent collecting activations in this call (0 when they were cached)."""
    load: Callable[[], object]
    """The checkpoint's TransformerBridge, booted on the first call (``bridge``)."""

    @property
    def bridge(self):
        """The checkpoint in a TransformerBridge. Booted only when a reader runs the model: one that reads the cache
        alone (diffing every checkpoint) skips the boot, about a quarter of a second per checkpoint."""
        return self.load()


def checkpoint_tag(run: Path, checkpoint: Path) -> str:
    """A directory name for a checkpoint: its path inside the run, else its name and a path hash."""
    ckpt = checkpoint.resolve()
    try:
        return "__".join(ckpt.relative_to(run.resolve()).parts) or "run"
    except ValueError:
        return f"ext-{ckpt.name}-{hashlib.sha1(str(ckpt).encode()).hexdigest()[:8]}"


def model_identity(checkpoint: Path) -> str:
    """Changes whenever the checkpoint's weights are rewritten, and not when its run directory is copied or moved
    (``shutil.copytree`` keeps modification times): its caches live under its path in the run (``checkpoint_tag``)."""
    st = (checkpoint / "model.safetensors").stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def probe_set(
    spec: SourceSpec, checkpoint: Path, bridge: Callable[[], object], tokenizer
) -> tuple[Path, list[LabelledSequence], float]:
    """(directory, sequences, seconds spent): loaded when on disk, else built from the checkpoint's samples."""
    key = {"probe": dataclasses.asdict(spec.probe), "model": model_identity(checkpoint)}
    root = RunLayout(spec.run).acts / checkpoint_tag(spec.run, checkpoint) / f"probe-{_digest(key)[:12]}"
    path = root / "sequences.json"
    if path.is_file():
        return root, load_sequences(path)[1], 0.0
    start = time.perf_counter()
    task = run_task(spec.run, tokenizer.get_vocab())
    sequences = build_probe_set(bridge().original_model, tokenizer, spec.probe, task)
    with atomic_file(path) as tmp:
        save_sequences(tmp, sequences, key)
    return root, sequences, time.perf_counter() - start


def open_source(spec: SourceSpec, checkpoint: Path) -> Source:
    """Load a checkpoint, its probe set and its activation cache at ``spec.hook`` (made if missing)."""
    bridge, tokenizer = functools.cache(lambda: load_bridge(checkpoint, spec.device)), load_tokenizer(checkpoint)
    root, sequences, probe_s = probe_set(spec, checkpoint, bridge, tokenizer)
    cache_dir = root / spec.hook
    fingerprint = _digest([sequences_digest(sequences), spec.hook, model_identity(checkpoint)])
    acts_s = 0.0
    if cached_fingerprint(cache_dir) != fingerprint:
        start = time.perf_counter()
        with atomic_dir(cache_dir) as tmp:
            write_cache(
                bridge(),
                spec.hook,
                sequences,
                tmp,
                model_dir=str(checkpoint.resolve()),
                fingerprint=fingerprint,
                pad_id=tokenizer.pad_token_id,
                batch_size=spec.collect_batch_size,
            )
        acts_s = time.perf_counter() - start
    return Source(checkpoint, tokenizer, sequences, open_cache(cache_dir), probe_s, acts_s, bridge)


def cache_activations(job: tuple[SourceSpec, Path]) -> None:
    """Make a checkpoint's probe set and activation cache (an executor job: ``open_source`` then finds them)."""
    open_source(*job)
