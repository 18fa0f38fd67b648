"""Does the deliberation group fire more on the hard-band rollouts that succeed, and does that change
along training? Per checkpoint step of the hard-band runs: the success rate, the group's activity on
successes and on failures, and their gap, each a mean over seeds with a 95% t interval. A seed
enters a step's activity numbers only when it has both successes and failures there."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from probes.stats import t_mean


def success_gap(records: Mapping[str, Mapping[str, Mapping]]) -> dict[str, dict]:
    """``records[run][step] = {"activity": [...], "correct": [...]}`` (one entry per rollout) ->
    per step: success_rate, on_success, on_failure and gap (on_success - on_failure) estimates."""
    steps = sorted({int(s) for rec in records.values() for s in rec})
    out = {}
    for step in steps:
        rate, on_success, on_failure = [], [], []
        for rec in records.values():
            if str(step) not in rec:
                continue
            a, c = np.asarray(rec[str(step)]["activity"], float), np.asarray(rec[str(step)]["correct"], bool)
            rate.append(float(c.mean()))
            if c.any() and (~c).any():
                on_success.append(float(a[c].mean()))
                on_failure.append(float(a[~c].mean()))
        gap = [s - f for s, f in zip(on_success, on_failure)]
        out[str(step)] = {
            name: t_mean(v).as_dict()
            for name, v in (
                ("success_rate", rate),
                ("on_success", on_success),
                ("on_failure", on_failure),
                ("gap", gap),
            )
        }
    return out
