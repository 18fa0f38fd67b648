"""Per-latent statistics of a shared SAE over a labelled activation cache: the evidence beside each label.

Groups are selected by attribution (``probes.attribution``); these statistics describe where
each latent fires, for reports and notebooks.

``feature_stats`` streams the cache in row chunks (activations stay memory-mapped) and
gathers per latent: where it fires (rate, mean and activation share per token role), how
its activity in deliberate traces depends on k, whether it predicts the model's choice of
mode at the decision row, and whether it encodes intermediate results (eta^2).

Rows. The decision row is the last prompt token ``=`` (``n_prompt - 1``); it predicts the
first completion token, ``<think>`` or a direct answer. A trace's operand row ``x_i``
predicts the running result ``r_i``. A prompt sits in the cache several times (canonical
deliberate, canonical direct, samples) and causal activations depend only on the prefix,
so rates, means, lifts, k profiles and eta^2 use only ``cache.unique_N`` rows. The choice
statistics need the samples' modes, which live on duplicate rows: each problem's decision
row is encoded once and weighted by its samples' choices (their activations are equal).

Contrasts compare like with like. ``trace_lift`` divides by the mean over the unique rows
*outside* deliberate completions (against all rows it is capped at 1 / (trace share)).
``direct_lift`` divides by the mean at the decision rows of all choosing samples (against all
rows every ``=`` detector looks like a shortcut); its ceiling is 1 / (share of direct samples).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from probes.activations import ROLES, ActivationCache
from probes.stats import correlation_ratio, spearman_rows, weighted_auroc

LIFT_EPS = 1e-8
"""Added to both sides of a lift: a latent silent on both sides has lift 1."""
STATS = (
    "fire_rate",
    "mean",
    "choice_auc",
    "result_eta2",
    "answer_eta2",
    "trace_lift",
    "direct_lift",
    "decision_lift",
    "k_corr",
)
"""Per-latent statistics (``FeatureStats.<name>_F``) in the evidence."""
MIN_ROWS_PER_VALUE = 5
"""eta^2 needs support: with no association it is about (V - 1) / (n - 1), so it is only
reported (else nan) when there are at least this many rows per observed value."""
DIRECT_K = 1
"""Chain length at which direct answers work (docs/DESIGN.md: the shortcut is real only at k = 1)."""


@dataclasses.dataclass(frozen=True)
class FeatureStats:
    """Per-latent statistics (arrays over the F latents) and the support they rest on."""

    n_rows: int
    """Unique rows behind fire_rate, mean and the role statistics."""
    fire_rate_F: Float[np.ndarray, " F"]
    mean_F: Float[np.ndarray, " F"]
    """Mean activation over the unique rows."""
    role_mean_FR: Float[np.ndarray, "F R"]
    """Mean activation per token role (columns follow ``roles``; nan for a role with no rows)."""
    role_share_FR: Float[np.ndarray, "F R"]
    """Share of the latent's activation mass per role (rows sum to 1, 0 for a silent latent)."""
    choice_auc_F: Float[np.ndarray, " F"]
    """AUROC of the decision-row activation for 'sampled deliberate' vs 'sampled direct' (nan: a class absent)."""
    n_choice_deliberate: int
    n_choice_direct: int
    result_eta2_F: Float[np.ndarray, " F"]
    """Correlation ratio of activation at trace operand rows (canonical, step >= 1) on the next token."""
    n_result_rows: int
    answer_eta2_F: Float[np.ndarray, " F"]
    """Correlation ratio of activation at the decision row of k = DIRECT_K problems on their answer:
    a latent that computes the direct answer where the shortcut works."""
    n_answer_rows: int
    trace_lift_F: Float[np.ndarray, " F"]
    """Mean over completion rows of deliberate sequences / mean over the other unique rows."""
    direct_lift_F: Float[np.ndarray, " F"]
    """Mean at decision rows of samples that answered directly / mean at decision rows of all choosing samples."""
    decision_lift_F: Float[np.ndarray, " F"]
    """Mean at decision rows of choosing samples / mean over all unique rows (where it fires, not a criterion)."""
    k_values: tuple[int, ...]
    k_mean_FK: Float[np.ndarray, "F K"]
    """Mean over completion rows of deliberate sequences, per k (columns follow ``k_values``)."""
    k_corr_F: Float[np.ndarray, " F"]
    """Spearman correlation of k with ``k_mean_FK`` (nan with fewer than 3 k or a constant profile)."""
    roles: tuple[str, ...] = ROLES

    @property
    def n_latents(self) -> int:
        return len(self.fire_rate_F)

    def evidence(self, latent: int) -> dict[str, float]:
        """Every statistic of one latent as plain floats."""
        out = {name: float(getattr(self, f"{name}_F")[latent]) for name in STATS}
        by_role = {"role_mean": self.role_mean_FR, "role_share": self.role_share_FR}
        return out | {
            f"{kind}/{r}": float(x[latent, i]) for kind, x in by_role.items() for i, r in enumerate(self.roles)
        }


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Which rows feed which statistic: per-row group ids over all N cache rows (-1: none)."""

    role_N: Int[np.ndarray, " N"]  # token role, on unique rows of the selection
    k_N: Int[np.ndarray, " N"]  # index into k_values, on unique completion rows of deliberate sequences
    value_N: Int[np.ndarray, " N"]  # index of the next token, on unique canonical trace operand rows (step >= 1)
    answer_N: Int[np.ndarray, " N"]  # index of the answer, on decision rows of canonical direct k = DIRECT_K sequences
    decision_rows_P: Int[np.ndarray, " P"]  # one decision row per problem with choosing samples
    k_values: tuple[int, ...]
    n_values: int
    w_deliberate_P: Float[np.ndarray, " P"]  # samples of each problem that chose to deliberate
    w_direct_P: Float[np.ndarray, " P"]  # ... that answered directly

    @property
    def rows_R(self) -> Int[np.ndarray, " R"]:
        """Unique rows of the selection, sorted (contiguous reads)."""
        return np.flatnonzero((self.role_N >= 0) | (self.answer_N >= 0))


def _sequence_column(cache: ActivationCache, name: str) -> np.ndarray:
    return np.asarray([s[name] for s in cache.sequences])


def _decision_rows(cache: ActivationCache, in_N: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(decision_rows_P, w_deliberate_P, w_direct_P): one representative row per problem (by pid) with samples."""
    start_S = np.zeros(len(cache.sequences), dtype=np.int64)
    first_rows = np.flatnonzero(cache.pos_N == 0)
    start_S[cache.seq_N[first_rows]] = first_rows
    row_S = start_S + _sequence_column(cache, "n_prompt") - 1
    mode_S = _sequence_column(cache, "mode")
    chose_S = (_sequence_column(cache, "source") == "sampled") & np.isin(mode_S, ("deliberate", "direct"))
    eligible = np.flatnonzero(chose_S & in_N[row_S])
    if len(eligible) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    _, first, slot_E = np.unique(_sequence_column(cache, "pid")[eligible], return_index=True, return_inverse=True)
    w_deliberate_P = np.bincount(slot_E, weights=mode_S[eligible] == "deliberate", minlength=len(first))
    w_direct_P = np.bincount(slot_E, weights=mode_S[eligible] == "direct", minlength=len(first))
    return row_S[eligible[first]], w_deliberate_P, w_direct_P


def _plan(cache: ActivationCache, rows_R: Int[np.ndarray, " R"] | None) -> _Plan:
    """Assign every cache row to the statistics it feeds."""
    in_N = np.zeros(cache.n_tokens, dtype=bool)
    in_N[slice(None) if rows_R is None else rows_R] = True
    seq_N = cache.seq_N
    base_N = in_N & cache.unique_N
    completion_N = cache.pos_N >= _sequence_column(cache, "n_prompt")[seq_N]
    trace_N = base_N & completion_N & (_sequence_column(cache, "mode")[seq_N] == "deliberate")
    k_N = _sequence_column(cache, "k")[seq_N]
    k_values = np.unique(k_N[trace_N])
    next_N = np.r_[cache.token_N[1:], -1]
    same_seq_N = np.r_[seq_N[1:] == seq_N[:-1], False]
    canonical_N = _sequence_column(cache, "source")[seq_N] == "canonical"
    result_N = trace_N & canonical_N & same_seq_N & (cache.role_N == ROLES.index("operand")) & (cache.step_N >= 1)
    answer_N = in_N & canonical_N & (_sequence_column(cache, "mode")[seq_N] == "direct") & (k_N == DIRECT_K)
    answer_N &= cache.pos_N == _sequence_column(cache, "n_prompt")[seq_N] - 1
    values = np.unique(np.r_[next_N[result_N], next_N[answer_N]])
    decision_rows_P, w_deliberate_P, w_direct_P = _decision_rows(cache, in_N)
    return _Plan(
        role_N=np.where(base_N, cache.role_N, -1).astype(np.int64),
        k_N=np.where(trace_N, np.searchsorted(k_values, k_N), -1),
        value_N=np.where(result_N, np.searchsorted(values, next_N), -1),
        answer_N=np.where(answer_N, np.searchsorted(values, next_N), -1),
        decision_rows_P=decision_rows_P,
        k_values=tuple(int(k) for k in k_values),
        n_values=len(values),
        w_deliberate_P=w_deliberate_P,
        w_direct_P=w_direct_P,
    )


def _group_sums(codes_NF: Tensor, group_N: np.ndarray, n_groups: int) -> tuple[Tensor, Tensor]:
    """(sums per group [G, F], rows per group [G]) over rows whose group id is >= 0."""
    keep = torch.from_numpy(np.flatnonzero(group_N >= 0)).to(codes_NF.device)
    group = torch.from_numpy(group_N[group_N >= 0]).to(codes_NF.device)
    sums_GF = codes_NF.new_zeros(n_groups, codes_NF.shape[1]).index_add_(0, group, codes_NF[keep])
    counts_G = codes_NF.new_zeros(n_groups).index_add_(0, group, torch.ones_like(group, dtype=codes_NF.dtype))
    return sums_GF, counts_G


@torch.no_grad()
def _encoded(sae, cache: ActivationCache, rows_R: np.ndarray, chunk_rows: int) -> Iterator[tuple[np.ndarray, Tensor]]:
    """(row indices, float64 codes on the SAE's device) per chunk of ``rows_R``."""
    for lo in range(0, len(rows_R), chunk_rows):
        idx = rows_R[lo : lo + chunk_rows]
        x_ND = torch.from_numpy(np.asarray(cache.acts_ND[idx], dtype=np.float32)).to(sae.W_dec.device)
        yield idx, sae.encode(x_ND).double()


def _chunk_sums(codes_NF: Float[Tensor, "N F"], plan: _Plan, idx: np.ndarray) -> dict[str, Tensor]:
    """Additive sufficient statistics of one chunk of rows ``idx``."""
    role_N, value_N = plan.role_N[idx], plan.value_N[idx]
    role_RF, role_n_R = _group_sums(codes_NF, role_N, len(ROLES))
    k_KF, k_n_K = _group_sums(codes_NF, plan.k_N[idx], len(plan.k_values))
    value_VF, value_n_V = _group_sums(codes_NF, value_N, plan.n_values)
    answer_VF, answer_n_V = _group_sums(codes_NF, plan.answer_N[idx], plan.n_values)
    on_value = torch.from_numpy(value_N >= 0).to(codes_NF.device)
    on_answer = torch.from_numpy(plan.answer_N[idx] >= 0).to(codes_NF.device)
    fires_F = (codes_NF[torch.from_numpy(role_N >= 0)] > 0).double().sum(0)  # over rows with a role
    return dict(
        role_RF=role_RF,
        role_n_R=role_n_R,
        fires_F=fires_F,
        k_KF=k_KF,
        k_n_K=k_n_K,
        value_VF=value_VF,
        value_n_V=value_n_V,
        value_sq_F=codes_NF[on_value].pow(2).sum(0),
        answer_VF=answer_VF,
        answer_n_V=answer_n_V,
        answer_sq_F=codes_NF[on_answer].pow(2).sum(0),
    )


def feature_stats(
    sae, cache: ActivationCache, rows: Int[np.ndarray, " R"] | None = None, chunk_rows: int = 1 << 12
) -> FeatureStats:
    """Statistics of every latent of ``sae`` (anything with ``encode`` and ``W_dec`` [F, D]) over the cache.

    ``rows`` restricts the cache rows (e.g. ``cache.rows("eval", unique=False)``); pass rows
    *with* duplicates: de-duplication happens here, and the samples' decision rows are duplicates.
    """
    if sae.W_dec.shape[1] != cache.d_model:
        raise ValueError(f"SAE d_in {sae.W_dec.shape[1]} != cache d_model {cache.d_model} ({cache.path})")
    plan, total = _plan(cache, rows), {}
    for idx, codes_NF in _encoded(sae, cache, plan.rows_R, chunk_rows):
        sums = _chunk_sums(codes_NF, plan, idx)
        total = {k: total[k] + v.cpu() if k in total else v.cpu() for k, v in sums.items()}
    if not total:
        raise ValueError(f"no rows of {cache.path} selected")
    decision = [codes_NF.cpu() for _, codes_NF in _encoded(sae, cache, plan.decision_rows_P, chunk_rows)]
    total["decision_PF"] = torch.cat(decision) if decision else torch.zeros(0, sae.W_dec.shape[0], dtype=torch.float64)
    return _finish({k: v.numpy() for k, v in total.items()}, plan)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _lift(sub_F: np.ndarray, all_F: np.ndarray) -> np.ndarray:
    return (sub_F + LIFT_EPS) / (all_F + LIFT_EPS)


def _finish(t: Mapping[str, np.ndarray], plan: _Plan) -> FeatureStats:
    """Turn the accumulated sums into per-latent statistics (nan where a statistic has no rows)."""
    n, n_trace = t["role_n_R"].sum(), t["k_n_K"].sum()
    sum_F, trace_sum_F, decision_PF = t["role_RF"].sum(0), t["k_KF"].sum(0), t["decision_PF"]
    mean_F = sum_F / max(n, 1)
    k_mean_FK = _ratio(t["k_KF"], t["k_n_K"][:, None]).T
    w_P = plan.w_direct_P + plan.w_deliberate_P
    decision_F = _ratio(w_P @ decision_PF, w_P.sum())
    return FeatureStats(
        n_rows=int(n),
        fire_rate_F=t["fires_F"] / max(n, 1),
        mean_F=mean_F,
        role_mean_FR=_ratio(t["role_RF"], t["role_n_R"][:, None]).T,
        role_share_FR=np.nan_to_num(_ratio(t["role_RF"], sum_F[None, :]).T),
        choice_auc_F=weighted_auroc(decision_PF, plan.w_deliberate_P, plan.w_direct_P),
        n_choice_deliberate=int(plan.w_deliberate_P.sum()),
        n_choice_direct=int(plan.w_direct_P.sum()),
        result_eta2_F=_supported_eta2(t["value_VF"], t["value_n_V"], t["value_sq_F"]),
        n_result_rows=int(t["value_n_V"].sum()),
        answer_eta2_F=_supported_eta2(t["answer_VF"], t["answer_n_V"], t["answer_sq_F"]),
        n_answer_rows=int(t["answer_n_V"].sum()),
        trace_lift_F=_lift(_ratio(trace_sum_F, n_trace), _ratio(sum_F - trace_sum_F, n - n_trace)),
        direct_lift_F=_lift(_ratio(plan.w_direct_P @ decision_PF, plan.w_direct_P.sum()), decision_F),
        decision_lift_F=_lift(decision_F, mean_F),
        k_values=plan.k_values,
        k_mean_FK=k_mean_FK,
        k_corr_F=spearman_rows(np.asarray(plan.k_values, dtype=float), k_mean_FK),
    )


def _supported_eta2(sum_VF: np.ndarray, n_V: np.ndarray, sum_sq_F: np.ndarray) -> np.ndarray:
    if n_V.sum() < MIN_ROWS_PER_VALUE * max((n_V > 0).sum(), 1):
        return np.full(sum_VF.shape[1], np.nan)
    return correlation_ratio(sum_VF, n_V, sum_sq_F)
