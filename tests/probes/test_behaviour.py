"""Behaviour rates over parsed completions."""

import math
import types

import pytest

from probes.behaviour import behaviour_rates


def parsed(mode, correct=True, length=2, skipped=0, wrong=0, lucky=False, error=False):
    return types.SimpleNamespace(
        mode=mode,
        correct=correct,
        format_error=error,
        n_skipped_steps=skipped,
        n_wrong_steps=wrong,
        copied_answer=False,
        length=length,
        lucky_success=lucky,
    )


def test_behaviour_rates__trace_length_among_deliberate_and_lucky_share_of_all():
    rates = behaviour_rates(
        [
            parsed("deliberate", length=10),
            parsed("deliberate", length=14, skipped=1, lucky=True),
            parsed("direct", length=2),
            parsed("direct", correct=False, length=2),
        ]
    )
    assert rates["trace_length"] == 12 and rates["mean_length"] == 7
    assert rates["lucky_success_rate"] == pytest.approx(0.25) and rates["skipped_step_rate"] == 0.5
    assert math.isnan(behaviour_rates([parsed("direct")])["trace_length"])
