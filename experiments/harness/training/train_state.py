"""Training state (model weights, optimizer state, step) as safetensors: no pickle anywhere.

Tensors go into the safetensors body; the optimizer's non-tensor structure (param
groups, per-parameter scalar entries) goes into its JSON metadata. Writes are atomic.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from experiments.harness.rundir import atomic_file

STATE = "bandlens_state"
"""The one safetensors metadata key holding the step, param groups and optimizer state keys (sorted JSON)."""


def save_state(path: Path, opt: torch.optim.Optimizer, step: int, model: torch.nn.Module | None = None) -> None:
    """Optimizer state (and optionally model weights) at ``step``, atomically."""
    sd = opt.state_dict()
    tensors = {f"opt.{pid}.{name}": v.contiguous() for pid, st in sd["state"].items() for name, v in st.items()}
    if model is not None:
        tensors |= {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    meta = {
        "step": str(step),
        "param_groups": json.dumps(sd["param_groups"]),
        "state_keys": json.dumps({str(pid): list(st) for pid, st in sd["state"].items()}),
    }
    with atomic_file(path) as tmp:  # one metadata key: safetensors writes several in a per-process random order
        save_file(tensors, str(tmp), metadata={STATE: json.dumps(meta, sort_keys=True)})


def load_state(
    path: Path, opt: torch.optim.Optimizer, model: torch.nn.Module | None = None, device: str = "cpu"
) -> int:
    """Restore what ``save_state`` wrote into ``opt`` (and ``model``); returns the step."""
    tensors = load_file(str(path), device=device)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    meta = json.loads(meta[STATE]) if STATE in meta else meta  # older files: the entries as separate keys
    keys = json.loads(meta["state_keys"])
    state = {int(pid): {name: tensors[f"opt.{pid}.{name}"] for name in names} for pid, names in keys.items()}
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    if model is not None:
        model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    return int(meta["step"])
