"""The teacher-refinement study end to end on a copy of the smoke run, and its pure parts on planted data."""

import json

import numpy as np
import pytest
from entry_points import run_entry, single_error_line

from experiments import refinement
from experiments.analysis.refinement_results import RefinementResult, frontier_bins, outcome
from experiments.harness.cli import preset_args
from experiments.harness.rundir import write_json
from experiments.harness.studies import refinements
from experiments.harness.tasks.registry import run_task
from experiments.harness.training import fixed_data
from probes.layout import RunDirError, RunLayout, read_json
from probes.selection import ifd, reverse_ifd, student_filter


@pytest.fixture
def run(copy_run, tmp_path):
    """A copy of the smoke run (the study writes into its run directory)."""
    return copy_run(tmp_path / "run")


def test_refinement__smoke_study_builds_every_arm_and_resumes(run, monkeypatch, tmp_path):
    args = preset_args(refinement.RefinementArgs, refinement.PRESETS, "smoke", run=run)
    res = refinement.main(args)
    out = RunLayout(run).refinement
    on_disk = read_json(out.results)
    assert on_disk["verdict"] == res.verdict and res.verdict in out.report.read_text()
    write_json(tmp_path / "again.json", RefinementResult.from_json(on_disk).to_json())  # read back, written again
    assert (tmp_path / "again.json").read_bytes() == out.results.read_bytes()
    assert res.level == pytest.approx(1 - 0.05 / 3) and [c.split for c in res.claims] == [
        "beyond",
        "in range",
        "beyond",
    ]
    assert all(c.outcome in ("holds", "no difference", "opposite") for c in res.claims)
    for fig in ("arms.png", "frontier.png"):
        assert (out.figures / fig).stat().st_size > 1000

    # the arms' sizes: (c) and (d) match, (b) holds three refinements per verified teacher trace
    samples = read_json(out.samples)
    n = {a: set(v) for a, v in res.n_train.items()}
    verified = sum(p["teacher_verified"] for p in samples["problems"])
    assert n["all_refinements"] == {3 * verified} and n["original"] == {len(samples["problems"])}
    assert n["student_filtered"] == n["random_same_size"] and max(n["random_same_size"]) <= 3 * verified
    assert len({next(iter(n[b.arm])) for b in res.frontier.bins}) == 1  # bins subsampled to one size

    # the teacher is competent beyond the student's range, and the training problems are not held out
    k_max, comp = res.k_train_max, res.competence
    beyond = [k for k in comp["teacher, deliberate"] if int(k) > k_max]
    assert np.mean([comp["teacher, deliberate"][k] for k in beyond]) > np.mean(
        [comp["student, deliberate"][k] for k in beyond]
    )
    task = run_task(run)
    held_out = {pr.key for pr in refinements.eval_problems(task, args.seed, args.teacher_k_max, args.eval_per_k)}
    problems = [task.from_record(p) for p in samples["problems"]]
    assert not held_out & {pr.key for pr in problems}

    # compressed refinements do skip written steps; direct ones are the answer alone
    rows = samples["samples"]
    for r in rows:
        parsed = problems[r["problem"]].parse(r["words"])
        if r["level"] == "compressed":
            assert parsed.correct and (parsed.n_skipped_steps > 0) == (r["k"] >= 2)
        if r["level"] == "direct":
            assert parsed.mode == "direct" and parsed.correct

    # the stored filter is the student filter of the stored reads
    col = lambda key: np.array([r["nll"][key] for r in rows])  # noqa: E731
    ifd_N, rifd_N = ifd(col("a_given_q"), col("a")), reverse_ifd(col("q_given_a"), col("q"))
    assert np.allclose(ifd_N, [r["ifd"] for r in rows]) and np.allclose(rifd_N, [r["rifd"] for r in rows])
    original = {r["problem"]: rifd_N[i] for i, r in enumerate(rows) if r["level"] == "original"}
    refined = [i for i, r in enumerate(rows) if r["level"] != "original"]
    expected = student_filter(
        ifd_N[refined], rifd_N[refined], np.array([original[rows[i]["problem"]] for i in refined])
    )
    assert [rows[i]["keep_by_student"] for i in refined] == expected.tolist()

    # a rerun trains nothing and reads nothing again
    arm_files = {p: p.stat().st_mtime_ns for p in (out.root / "arms").rglob("*.json")}
    assert len(arm_files) == len(res.n_train) * len(args.seeds)
    monkeypatch.setattr(fixed_data, "train", lambda *a, **k: pytest.fail("retrained an arm"))
    monkeypatch.setattr(refinement, "fit", lambda *a, **k: pytest.fail("retrained the teacher"))
    monkeypatch.setattr(refinement, "read_samples", lambda *a, **k: pytest.fail("re-read the samples"))
    again = refinement.main(args)
    assert json.dumps(again.arms) == json.dumps(res.arms) and again.verdict == res.verdict
    assert {p: p.stat().st_mtime_ns for p in arm_files} == arm_files


def test_refinement__a_missing_or_non_arithmetic_run_stops_in_one_line(run, tmp_path):
    assert "no finished base model" in single_error_line(
        run_entry("refinement", "--preset", "smoke", "--run", str(tmp_path / "nothing"))
    )
    config = read_json(run / "config.json")
    (run / "config.json").write_text(json.dumps({**config, "task": {"task": "maze", "max_size": 5, "loop_frac": 0.0}}))
    assert "needs a plain arithmetic run" in single_error_line(
        run_entry("refinement", "--preset", "smoke", "--run", str(run))
    )
    assert not (run / "refinement").exists() and not (tmp_path / "nothing").exists()


def test_refinement__teacher_range_must_reach_beyond_the_student(run):
    args = preset_args(refinement.RefinementArgs, refinement.PRESETS, "smoke", run=run, teacher_k_max=3)
    with pytest.raises(RunDirError, match="must exceed the run's k_train_max 3"):
        refinement.main(args)


def words(text: str) -> list[str]:
    return text.split()


def test_compressed__drops_every_second_step_and_keeps_the_answer():
    trace = words("<think> 1 + 2 3 * 2 1 - 4 2 + 1 3 </think> 3 <eos>")
    assert refinements.compressed(trace) == words("<think> 1 + 2 3 - 4 2 </think> 3 <eos>")
    assert refinements.direct(trace) == ["3", "<eos>"]
    one = words("<think> 1 + 2 3 </think> 3 <eos>")
    assert refinements.compressed(one) == one  # one step: nothing to drop


def test_frontier_bins__equal_sizes_nearest_first_ties_at_random():
    pass_rate = np.array([1.0, 1.0, 1.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0])
    bins = frontier_bins(pass_rate, 3, seed=0)
    assert np.bincount(bins).tolist() == [3, 3, 3]
    assert bins[:5].tolist() == [0, 0, 0, 1, 1] and sorted(bins[5:].tolist()) == [
        1,
        2,
        2,
        2,
    ]  # one tied 0.0 joins bin 1
    assert sorted(frontier_bins(np.zeros(9), 3, seed=1).tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # all tied: random
    assert frontier_bins(np.zeros(9), 3, seed=1).tolist() != frontier_bins(np.zeros(9), 3, seed=2).tolist()


@pytest.mark.parametrize(
    "ci, direction, said",
    [
        ((0.1, 0.3), +1, "holds"),
        ((-0.3, -0.1), +1, "opposite"),
        ((-0.1, 0.2), -1, "no difference"),
        ((-0.3, -0.1), -1, "holds"),
        ((float("nan"), float("nan")), +1, "no difference"),
    ],
)
def test_outcome__the_interval_decides_in_the_claimed_direction(ci, direction, said):
    assert outcome(ci, direction) == said


def test_decide__finds_a_planted_gain_only_in_its_split_and_says_no_difference_without_one():
    """Planted arms on 200 held-out problems (100 in range, 100 beyond), three seeds each: the filtered arm is right
    on 80% of the beyond problems, the random subset on 40%; in range both are right on 70%."""
    from experiments.analysis.refinement_results import Test, decide

    rng = np.random.default_rng(0)
    splits = {"in range": np.arange(100), "beyond": np.arange(100, 200)}

    def arm(beyond_rate: float) -> list[np.ndarray]:
        return [np.concatenate([rng.random(100) < 0.7, rng.random(100) < beyond_rate]) for _ in range(3)]

    runs = {"student_filtered": arm(0.8), "random_same_size": arm(0.4)}
    helps = Test("self-filtering helps", "beyond", "student_filtered", "random_same_size", +1)
    claim = decide(helps, runs, splits, 1 - 0.05 / 3)
    assert claim.outcome == "holds" and 0.3 < claim.diff < 0.5 and claim.ci[0] > 0
    in_range = decide(
        Test("self-filtering helps", "in range", "student_filtered", "random_same_size", +1), runs, splits, 1 - 0.05 / 3
    )
    assert in_range.outcome == "no difference"
