"""Read-only helpers for browsing a run directory from notebooks.

One latent's codes,
its top-activating token contexts and its activity by token role and chain length k;
and an HTML rendering of a context with each token shaded by the latent's activation.
Everything returns plain data; nothing here writes.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable

import numpy as np
import torch
from jaxtyping import Float, Int

from probes.activations import ROLES, ActivationCache


@torch.no_grad()
def latent_codes(
    sae, cache: ActivationCache, latent: int, rows_R: Int[np.ndarray, " R"], chunk_rows: int = 1 << 14
) -> Float[np.ndarray, " R"]:
    """One latent's code on each row, streamed in chunks (rows keep their given order)."""
    out_R = np.zeros(len(rows_R), dtype=np.float32)
    for lo in range(0, len(rows_R), chunk_rows):
        idx = np.asarray(rows_R[lo : lo + chunk_rows])
        x_ND = torch.from_numpy(np.asarray(cache.acts_ND[idx], dtype=np.float32)).to(sae.device)
        out_R[lo : lo + len(idx)] = sae.encode(x_ND)[:, latent].float().cpu().numpy()
    return out_R


def sequence_rows(cache: ActivationCache, seq: int) -> Int[np.ndarray, " L"]:
    """Rows of one sequence in position order."""
    rows_L = np.flatnonzero(cache.seq_N == seq)
    return rows_L[np.argsort(cache.pos_N[rows_L], kind="stable")]


@dataclasses.dataclass(frozen=True)
class Context:
    """One top-activating token with its whole sequence and the latent's code on every token."""

    seq: int
    pos: int
    value: float
    token_ids: tuple[int, ...]
    values: tuple[float, ...]
    labels: dict
    """The sequence's labels (pid, k, band, mode, source, correct, split, n_prompt)."""


def top_activating_contexts(
    sae, cache: ActivationCache, latent: int, n: int, rows_R: Int[np.ndarray, " R"] | None = None
) -> list[Context]:
    """The n rows (default: all unique-prefix rows) where ``latent`` fires hardest, strongest first.

    Rows with a zero code are never returned, so a dead latent gives an empty list.
    """
    rows_R = np.flatnonzero(cache.unique_N) if rows_R is None else np.asarray(rows_R)
    codes_R = latent_codes(sae, cache, latent, rows_R)
    order = np.argsort(-codes_R, kind="stable")[:n]
    out = []
    for i in order:
        if codes_R[i] <= 0:
            break
        row = int(rows_R[i])
        seq = int(cache.seq_N[row])
        rows_L = sequence_rows(cache, seq)
        out.append(
            Context(
                seq=seq,
                pos=int(cache.pos_N[row]),
                value=float(codes_R[i]),
                token_ids=tuple(int(t) for t in cache.token_N[rows_L]),
                values=tuple(float(v) for v in latent_codes(sae, cache, latent, rows_L)),
                labels=dict(cache.sequences[seq]),
            )
        )
    return out


@dataclasses.dataclass(frozen=True)
class RoleKTable:
    """Mean code of one latent per (token role, chain length k), with the token counts."""

    roles: tuple[str, ...]
    ks: tuple[int, ...]
    mean_RK: np.ndarray
    """nan where a (role, k) cell has no tokens."""
    n_RK: np.ndarray


def activity_by_role_and_k(
    sae, cache: ActivationCache, latent: int, rows_R: Int[np.ndarray, " R"] | None = None
) -> RoleKTable:
    """The latent's mean code in each (role, k) cell over ``rows_R`` (default: unique-prefix rows)."""
    rows_R = np.flatnonzero(cache.unique_N) if rows_R is None else np.asarray(rows_R)
    codes_R = latent_codes(sae, cache, latent, rows_R)
    k_R = cache.seq_column("k")[rows_R].astype(int)
    role_R = cache.role_N[rows_R].astype(int)
    ks = tuple(sorted(set(k_R.tolist())))
    mean_RK = np.full((len(ROLES), len(ks)), np.nan)
    n_RK = np.zeros((len(ROLES), len(ks)), dtype=int)
    for j, k in enumerate(ks):
        for r in range(len(ROLES)):
            cell = (k_R == k) & (role_R == r)
            n_RK[r, j] = int(cell.sum())
            if n_RK[r, j]:
                mean_RK[r, j] = float(codes_R[cell].mean())
    return RoleKTable(ROLES, ks, mean_RK, n_RK)


def coloured_html(words: list[str], values: list[float], vmax: float, mark: int | None = None) -> str:
    """Tokens as inline spans shaded red by value / vmax; ``mark`` gets an outline; hover shows the value."""
    spans = []
    for i, (w, v) in enumerate(zip(words, values, strict=True)):
        alpha = 0.0 if vmax <= 0 else min(max(v / vmax, 0.0), 1.0)
        border = "outline:2px solid #000;" if i == mark else ""
        spans.append(
            f'<span title="{v:.3f}" style="background:rgba(220,40,40,{alpha:.2f});{border}'
            f'padding:1px 3px;margin:1px;font-family:monospace">{html.escape(w)}</span>'
        )
    return "".join(spans)


def contexts_html(contexts: list[Context], words_of: Callable[[list[int]], list[str]]) -> str:
    """One line per context: its code, k, mode, source and correctness, then the sequence shaded by the
    latent (``|`` between prompt and completion, the top token outlined); ``words_of`` maps token ids to words."""
    vmax = max((c.value for c in contexts), default=0.0)
    lines = []
    for c in contexts:
        n = c.labels["n_prompt"]
        words = words_of(list(c.token_ids))
        words, values = words[:n] + ["|"] + words[n:], [*c.values[:n], 0.0, *c.values[n:]]
        meta = (
            f"{c.value:.3f} · k={c.labels['k']} · {c.labels['mode']} · {c.labels['source']} · "
            f"{'correct' if c.labels['correct'] else 'wrong'}"
        )
        lines.append(
            f"<div style='margin:2px 0'><code style='display:inline-block;width:22em'>{html.escape(meta)}</code>"
            f"{coloured_html(words, values, vmax, c.pos + (c.pos >= n))}</div>"
        )
    return "".join(lines)
