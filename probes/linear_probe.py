"""Linear probes over SAE codes, with a shuffled-label control.

A group of latents "carries" a variable when a linear read-out of the group's codes predicts
it on rows the group was not selected on, clearly better than the same probe trained on
shuffled labels (which can only learn the class frequencies). Multinomial logistic
regression on standardised codes, full-batch L-BFGS, a small L2 penalty.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from jaxtyping import Float, Int


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    accuracy: float
    """Test accuracy of the probe trained on the true labels."""
    shuffled_accuracy: float
    """Test accuracy of the probe trained on shuffled labels (the control)."""
    majority: float
    """Test accuracy of always predicting the training split's most common class."""
    n_train: int
    n_test: int


def _fit_predict(x_train, y_train, x_test, n_classes: int, l2: float, steps: int) -> np.ndarray:
    x, xt = (torch.as_tensor(a, dtype=torch.float64) for a in (x_train, x_test))
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-6)
    x, xt = (x - mu) / sd, (xt - mu) / sd
    y = torch.as_tensor(y_train, dtype=torch.long)
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w + b, y) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (xt @ w + b).argmax(1).numpy()


def probe(
    x_train: Float[np.ndarray, "N G"],
    y_train: Int[np.ndarray, " N"],
    x_test: Float[np.ndarray, "M G"],
    y_test: Int[np.ndarray, " M"],
    seed: int,
    l2: float = 1e-3,
    steps: int = 100,
) -> ProbeResult:
    """Probe accuracy on the test rows, against a probe trained on shuffled training labels."""
    classes, y_all = np.unique(np.r_[y_train, y_test], return_inverse=True)
    ytr, yte = y_all[: len(y_train)], y_all[len(y_train) :]
    shuffled = np.random.Generator(np.random.PCG64([seed, 0x5F1E])).permutation(ytr)
    acc = lambda pred: float((pred == yte).mean()) if len(yte) else float("nan")  # noqa: E731
    majority = float((yte == np.bincount(ytr, minlength=len(classes)).argmax()).mean()) if len(yte) else float("nan")
    if x_train.shape[1] == 0 or len(ytr) == 0:
        return ProbeResult(majority, majority, majority, len(ytr), len(yte))
    fit = lambda y: _fit_predict(x_train, y, x_test, len(classes), l2, steps)  # noqa: E731
    return ProbeResult(acc(fit(ytr)), acc(fit(shuffled)), majority, len(ytr), len(yte))
