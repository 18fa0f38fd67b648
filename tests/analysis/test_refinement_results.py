"""The refinement study's typed result, built by its own statistics from planted arms and reads."""

import dataclasses
import json
import math

import numpy as np

from experiments.analysis.refinement_report import write_report
from experiments.analysis.refinement_results import (
    LEVELS,
    MAIN_ARMS,
    Frontier,
    FrontierBin,
    RefinementResult,
    decide,
    frontier_arm,
    level_of,
    read_summary,
    split_rows,
    split_tables,
    verdict,
)
from experiments.analysis.refinement_results import tests as decisions  # a name pytest would collect
from experiments.harness.rundir import write_json
from experiments.harness.training.fixed_data import Schedule
from probes.layout import RefinementLayout, read_json


def planted_result() -> RefinementResult:
    """Two seeds per arm on 40 held-out problems (k = 1..4, the student pretrained on k <= 2); the originals' reads
    leave the filter's share out (None) and one k's IFD undefined (None); one reported contrast is undefined (nan)."""
    rng = np.random.default_rng(0)
    k_P = np.repeat([1, 2, 3, 4], 10)
    splits = split_rows(k_P, 2)
    bins = [frontier_arm(b) for b in range(2)]
    runs = {a: [rng.random(k_P.size) < 0.6 for _ in range(2)] for a in (*MAIN_ARMS, *bins)}
    decided = decisions(2)
    level = level_of(len(decided))
    claims = [decide(t, runs, splits, level) for t in decided]
    undefined = dataclasses.replace(
        claims[0], split="in range", diff=math.nan, ci=(math.nan, math.nan), outcome="no difference"
    )
    level_N = np.array(["original", *LEVELS] * 8)
    k_N = np.repeat([1, 2, 3, 4], 8)
    ifd_N = np.where((level_N == "original") & (k_N == 4), np.nan, rng.random(level_N.size))
    reads = read_summary(level_N, k_N, ifd_N, rng.random(level_N.size) + 0.5, rng.random(level_N.size) < 0.5)
    frontier = Frontier(
        [FrontierBin(b, 12, 0.2 + 0.5 * i, 2.0 + i) for i, b in enumerate(bins)],
        split_tables({b: runs[b] for b in bins}, splits, bins[0], level, n_boot=50, seed=10),
    )
    competence = {
        "student, deliberate": {str(k): 1 / k for k in range(1, 5)},
        "teacher, deliberate": {str(k): 1.0 for k in range(1, 5)},
    }
    return RefinementResult(
        preset="test",
        k_train_max=2,
        teacher_k_max=4,
        seeds=[0, 1],
        ft=Schedule(8, 8, 3e-4, 2),
        teacher_steps=60,
        level=level,
        n_tests=len(decided),
        n_eval={s: int(r.size) for s, r in splits.items()},
        competence=competence,
        student_before={"in range": 0.9, "beyond": 0.1},
        teacher_verified=6,
        n_problems=8,
        reads=reads,
        n_train={a: [12, 12] for a in runs},
        arms=split_tables({a: runs[a] for a in MAIN_ARMS}, splits, MAIN_ARMS[0], level, n_boot=50, seed=0),
        frontier=frontier,
        claims=claims,
        reported=[undefined],
        verdict=verdict(claims, level),
    )


def test_refinement_result__round_trips_through_its_json(tmp_path):
    """Equal from its own JSON; written to disk (nan as null), read back and written again byte for byte."""
    r = planted_result()
    assert r.reads["original"].kept_share is None and r.reads["original"].per_k["4"].ifd is None
    assert RefinementResult.from_json(r.to_json()) == r
    write_json(tmp_path / "results.json", r.to_json())
    back = RefinementResult.from_json(read_json(tmp_path / "results.json"))
    assert math.isnan(back.reported[0].diff) and back.reads["original"].kept_share is None  # nan again; None stays None
    assert json.dumps(back.to_json()) == json.dumps(r.to_json())
    write_json(tmp_path / "again.json", back.to_json())
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "results.json").read_bytes()
    write_report(RefinementLayout(tmp_path), back)  # the report renders the typed result read back
    assert r.verdict in (tmp_path / "report.md").read_text()


def test_refinement_result__to_json_keeps_the_written_layout():
    """results.json's keys, in order, as the study wrote them before it had a typed result."""
    d = planted_result().to_json()
    assert list(d) == [
        "preset",
        "k_train_max",
        "teacher_k_max",
        "seeds",
        "ft",
        "teacher_steps",
        "level",
        "n_tests",
        "n_eval",
        "competence",
        "student_before",
        "teacher_verified",
        "n_problems",
        "reads",
        "n_train",
        "arms",
        "frontier",
        "claims",
        "reported",
        "verdict",
    ]
    assert d["ft"] == {"steps": 8, "batch_size": 8, "lr": 3e-4, "warmup": 2}
    assert list(d["reads"]["full"]) == ["n", "kept_share", "ifd", "rifd", "per_k"] and list(
        d["reads"]["full"]["per_k"]["1"]
    ) == ["n", "ifd", "rifd"]
    assert list(d["frontier"]) == ["bins", "splits"] and list(d["frontier"]["bins"][0]) == [
        "arm",
        "n",
        "distance",
        "mean_k",
    ]
    assert list(d["claims"][0]) == ["claim", "split", "arm", "against", "diff", "ci", "outcome"]
