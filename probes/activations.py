"""Activations at one hook over labelled token sequences, cached on disk with token metadata.

Sequences arrive as plain data (``LabelledSequence``: token ids plus per-token labels),
built by ``experiments.harness.reading.probe_sets``. ``write_cache`` runs them through a
TransformerBridge in batches and streams each batch into a memory-mapped ``acts.npy``,
so memory stays bounded by one batch however large the set. A cache directory holds

* ``acts.npy``            float32 [n_tokens, d_model], rows of one sequence contiguous;
* ``tokens.safetensors``  per-token columns: seq, pos, token, role, step, unique;
* ``sequences.json``      per-sequence labels (pid, k, band, mode, source, correct, split);
* ``meta.json``           hook name, model, roles, fingerprint.

Several SAEs and later analyses reuse one cache, so activations are produced once per
(checkpoint, hook, sequence set).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float, Int
from safetensors.numpy import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from probes.padding import right_pad

CACHE_FORMAT = 1
ROLES: tuple[str, ...] = ("special", "operand", "operator", "intermediate", "answer")
"""Token roles from the task grammar; the ``role`` column stores indices into this tuple."""
SEQUENCE_FIELDS = ("pid", "k", "band", "mode", "source", "correct", "split", "n_prompt")


@dataclasses.dataclass(frozen=True)
class LabelledSequence:
    """One token sequence (prompt + completion) with per-token and per-sequence labels."""

    token_ids: tuple[int, ...]
    roles: tuple[str, ...]
    """Role of each token, a member of ROLES."""
    steps: tuple[int, ...]
    """Chain step each token belongs to (0 for the start value, i for op_i, x_i, r_i), -1 for none."""
    n_prompt: int
    """Tokens before the completion (a forced <think> counts as completion)."""
    pid: str
    k: int
    band: str
    mode: str
    """'deliberate', 'direct' or 'malformed' (what the completion turned out to be)."""
    source: str
    """'canonical' (teacher-forced correct completion) or 'sampled' (the model's own)."""
    correct: bool
    split: str
    """'train' or 'eval'; whole problems go to one split."""

    def __post_init__(self) -> None:
        n = len(self.token_ids)
        if not (len(self.roles) == len(self.steps) == n) or not 0 < self.n_prompt <= n:
            raise ValueError(f"{self.pid}: {n} tokens, {len(self.roles)} roles, {len(self.steps)} steps")
        if set(self.roles) - set(ROLES):
            raise ValueError(f"{self.pid}: unknown roles {set(self.roles) - set(ROLES)}")


@dataclasses.dataclass(frozen=True)
class ActivationCache:
    """A cache directory opened for reading; ``acts_ND`` is memory-mapped, never loaded whole."""

    path: Path
    hook_name: str
    model_dir: str
    fingerprint: str
    acts_ND: np.ndarray
    seq_N: np.ndarray
    pos_N: np.ndarray
    token_N: np.ndarray
    role_N: np.ndarray
    step_N: np.ndarray
    unique_N: np.ndarray
    """True on the first occurrence (within its split) of a token's whole prefix: causal
    activations depend only on the prefix, so later occurrences are exact duplicates."""
    sequences: tuple[dict, ...]

    @property
    def n_tokens(self) -> int:
        return self.acts_ND.shape[0]

    @property
    def d_model(self) -> int:
        return self.acts_ND.shape[1]

    def seq_column(self, name: str) -> np.ndarray:
        """A per-sequence label broadcast to every token row."""
        return np.asarray([s[name] for s in self.sequences])[self.seq_N]

    def rows(self, split: str, unique: bool = True) -> Int[np.ndarray, " R"]:
        """Row indices of one split, optionally without duplicate prefixes."""
        mask = self.seq_column("split") == split
        return np.flatnonzero(mask & self.unique_N) if unique else np.flatnonzero(mask)

    def pair_rows(self, split: str) -> Int[np.ndarray, " R"]:
        """Rows t whose predecessor t-1 is in the same sequence and t's prefix is unique."""
        rows_R = self.rows(split, unique=True)
        return rows_R[self.pos_N[rows_R] > 0]


def sequences_digest(sequences: Sequence[LabelledSequence]) -> str:
    """Content hash of a sequence set (token ids and labels)."""
    h = hashlib.sha256()
    for s in sequences:
        h.update(json.dumps(dataclasses.asdict(s), sort_keys=True).encode())
    return h.hexdigest()


def save_sequences(path: Path, sequences: Sequence[LabelledSequence], meta: dict) -> None:
    """Write a sequence set as JSON (``meta`` says how it was made); the caller makes it atomic."""
    rows = [dataclasses.asdict(s) for s in sequences]
    path.write_text(json.dumps({"meta": meta, "sequences": rows}))


def load_sequences(path: Path) -> tuple[dict, list[LabelledSequence]]:
    """(meta, sequences) as written by ``save_sequences``."""
    data = json.loads(path.read_text())
    seqs = [
        LabelledSequence(
            **{**s, "token_ids": tuple(s["token_ids"]), "roles": tuple(s["roles"]), "steps": tuple(s["steps"])}
        )
        for s in data["sequences"]
    ]
    return data["meta"], seqs


def unique_prefix_masks(sequences: Sequence[LabelledSequence]) -> list[np.ndarray]:
    """Per sequence, True where the prefix ending at that token is new within its split.

    A trie over (split, token ids): each new (parent node, token) edge is a new prefix.
    """
    edges: dict[tuple[int, int], int] = {}
    roots: dict[str, int] = {}
    out = []
    for s in sequences:
        node = roots.setdefault(s.split, -1 - len(roots))
        mask = np.zeros(len(s.token_ids), dtype=bool)
        for i, tok in enumerate(s.token_ids):
            key = (node, tok)
            if key not in edges:
                edges[key] = len(edges)
                mask[i] = True
            node = edges[key]
        out.append(mask)
    return out


@torch.no_grad()
def hook_activations(bridge, hook_name: str, ids_BL: Int[Tensor, "B L"]) -> Float[Tensor, "B L D"]:
    """Activations at ``hook_name`` for a batch (the HF model's own values: no weight processing)."""
    device = next(bridge.parameters()).device
    _, cache = bridge.run_with_cache(ids_BL.to(device), names_filter=lambda name: name == hook_name)
    if hook_name not in cache:
        raise KeyError(f"hook {hook_name!r} not found in the model")
    return cache[hook_name].float().cpu()


def _length_batches(sequences: Sequence[LabelledSequence], batch_size: int) -> Iterator[list[int]]:
    """Sequence indices in batches of similar length (less padding)."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i].token_ids))
    for lo in range(0, len(order), batch_size):
        yield order[lo : lo + batch_size]


def _token_columns(sequences: Sequence[LabelledSequence], order: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-token columns in cache row order (sequences listed in ``order``)."""
    uniq = unique_prefix_masks(sequences)
    role_index = {r: i for i, r in enumerate(ROLES)}
    cols: dict[str, list] = {"seq": [], "pos": [], "token": [], "role": [], "step": [], "unique": []}
    for i in order:
        s = sequences[i]
        n = len(s.token_ids)
        cols["seq"].append(np.full(n, i))
        cols["pos"].append(np.arange(n))
        cols["token"].append(np.asarray(s.token_ids))
        cols["role"].append(np.asarray([role_index[r] for r in s.roles]))
        cols["step"].append(np.asarray(s.steps))
        cols["unique"].append(uniq[i])
    out = {k: np.concatenate(v).astype(np.int32) for k, v in cols.items() if k != "unique"}
    out["unique"] = np.concatenate(cols["unique"]).astype(np.uint8)
    return out


def write_cache(
    bridge,
    hook_name: str,
    sequences: Sequence[LabelledSequence],
    out_dir: Path,
    *,
    model_dir: str,
    fingerprint: str,
    pad_id: int,
    batch_size: int = 256,
) -> None:
    """Collect activations at ``hook_name`` for every token into ``out_dir`` (the caller makes it atomic)."""
    if not sequences:
        raise ValueError("write_cache: no sequences")
    batches = list(_length_batches(sequences, batch_size))
    order = [i for b in batches for i in b]
    cols = _token_columns(sequences, order)
    acts_ND = None
    row = 0
    for batch in tqdm(batches, desc=f"activations {hook_name}"):
        acts_BLD = hook_activations(bridge, hook_name, right_pad([sequences[i].token_ids for i in batch], pad_id)[0])
        if acts_ND is None:
            shape = (len(cols["seq"]), acts_BLD.shape[-1])
            acts_ND = np.lib.format.open_memmap(out_dir / "acts.npy", mode="w+", dtype=np.float32, shape=shape)
        for b, i in enumerate(batch):
            n = len(sequences[i].token_ids)
            acts_ND[row : row + n] = acts_BLD[b, :n].numpy()
            row += n
    acts_ND.flush()
    del acts_ND
    save_file(cols, str(out_dir / "tokens.safetensors"))
    seq_rows = [{f: getattr(s, f) for f in SEQUENCE_FIELDS} for s in sequences]
    (out_dir / "sequences.json").write_text(json.dumps(seq_rows))
    meta = dict(format=CACHE_FORMAT, hook_name=hook_name, model_dir=model_dir, fingerprint=fingerprint, roles=ROLES)
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2))


def open_cache(path: Path) -> ActivationCache:
    """Open a cache directory written by ``write_cache`` (activations stay on disk)."""
    meta = json.loads((path / "meta.json").read_text())
    if meta.get("format") != CACHE_FORMAT or tuple(meta["roles"]) != ROLES:
        raise ValueError(f"{path}: activation cache format {meta.get('format')} is not {CACHE_FORMAT}")
    cols = load_file(str(path / "tokens.safetensors"))
    return ActivationCache(
        path=path,
        hook_name=meta["hook_name"],
        model_dir=meta["model_dir"],
        fingerprint=meta["fingerprint"],
        acts_ND=np.load(path / "acts.npy", mmap_mode="r"),
        seq_N=cols["seq"],
        pos_N=cols["pos"],
        token_N=cols["token"],
        role_N=cols["role"],
        step_N=cols["step"],
        unique_N=cols["unique"].astype(bool),
        sequences=tuple(json.loads((path / "sequences.json").read_text())),
    )


def cached_fingerprint(path: Path) -> str | None:
    """Fingerprint of a finished cache at ``path``, None when there is none."""
    meta_path = path / "meta.json"
    return json.loads(meta_path.read_text()).get("fingerprint") if meta_path.is_file() else None
