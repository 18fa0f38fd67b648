"""Task behaviour of a checkpoint under TransformerLens forward hooks (for causal checks).

Rollouts run on the HF model inside the bridge (``bridge.original_model``), whose
modules the bridge has wrapped, so hooks added with ``bridge.hooks`` act on every
sampled token while the harness's KV-cached sampler does the decoding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from experiments.evaluate import rollouts
from experiments.task import Problem

HookSpec = Sequence[tuple[str, object]]


def behaviour_under_hooks(bridge, tokenizer, problems: Sequence[Problem], fwd_hooks: HookSpec = ()) -> dict[str, float]:
    """Greedy ``direct_acc`` (<think> banned), ``deliberate_acc`` (<think> forced) and
    ``deliberate_rate`` (free choice picks <think>) with ``fwd_hooks`` active."""
    model = bridge.original_model
    with bridge.hooks(fwd_hooks=list(fwd_hooks)):
        direct = rollouts(model, tokenizer, problems, mode="direct", temperature=0.0)
        deliberate = rollouts(model, tokenizer, problems, mode="deliberate", temperature=0.0)
        free = rollouts(model, tokenizer, problems, mode=None, temperature=0.0)
    return {
        "direct_acc": float(np.mean([r.parsed.correct for r in direct])),
        "deliberate_acc": float(np.mean([r.parsed.correct for r in deliberate])),
        "deliberate_rate": float(np.mean([r.parsed.mode == "deliberate" for r in free])),
    }
