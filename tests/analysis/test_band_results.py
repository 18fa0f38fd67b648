from experiments.analysis.band_results import differs, verdict
from probes.matched_gain import MatchedPoint, Matching
from probes.stats import Estimate


def est(mean, lo, hi, n=3):
    return Estimate(mean, (lo, hi), n)


def matching(target):
    return Matching(target, {"x": MatchedPoint(True, 10, target, target)})


def test_differs__needs_gap_above_noise_floor_and_disjoint_cis():
    assert differs(est(0.3, 0.25, 0.35), est(0.0, -0.05, 0.05), floor=0.1)
    assert not differs(est(0.3, 0.25, 0.35), est(0.0, -0.05, 0.05), floor=0.4)  # inside the noise floor
    assert not differs(est(0.3, 0.0, 0.6), est(0.0, -0.05, 0.05), floor=0.1)  # CIs overlap
    assert not differs(est(0.3, 0.25, 0.35), est(float("nan"), 0, 0, n=0), floor=0.1)


def test_verdict__reports_no_difference_and_caveats_failed_checks():
    same = {b: {"deliberation": est(0.1, 0.0, 0.2)} for b in ("easy", "medium", "hard")}
    text = verdict(same, {"deliberation": 0.05}, matching(0.05), {"easy": 3, "medium": 3, "hard": 2}, 3, {"deliberation": True})
    assert "no band differs" in text and "hard 2/3" in text and "+0.050" in text
    apart = {"easy": {"deliberation": est(0.0, -0.02, 0.02)}, "medium": {"deliberation": est(0.3, 0.25, 0.35)},
             "hard": {"deliberation": est(0.0, -0.02, 0.02)}}  # fmt: skip
    text = verdict(apart, {"deliberation": 0.05}, matching(0.05), {"easy": 3, "medium": 3, "hard": 3}, 3, {"deliberation": False})
    assert "deliberation features changed +0.00 for easy vs +0.30 for medium" in text
    assert "failed its causal check" in text
    assert "no positive gain" in verdict(apart, {"deliberation": 0.05}, matching(-0.01), {"easy": 3, "medium": 3, "hard": 3}, 3, {})
