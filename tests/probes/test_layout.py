"""The read-side run layout: band runs, checkpoint discovery with the completeness rule."""

from probes.layout import (
    TRAINER_STATE,
    RunLayout,
    checkpoint_dir,
    checkpoint_step,
    checkpoints,
    latest_checkpoint,
    run_name,
)


def _ckpt(run, step, complete=True, name="checkpoint"):
    d = run / f"{name}-{step}"
    d.mkdir(parents=True)
    if complete:
        (d / TRAINER_STATE).write_bytes(b"")
    return d


def test_checkpoints__only_complete_ones_in_step_order(tmp_path):
    run = tmp_path / run_name("easy", 0)
    _ckpt(run, 10), _ckpt(run, 2, name="ckpt"), _ckpt(run, 20, complete=False)
    (run / "checkpoint-x").mkdir()
    assert list(checkpoints(run)) == [2, 10]  # the name before December 2026 (ckpt-2) is still read
    assert latest_checkpoint(run) == 10 and latest_checkpoint(tmp_path / "absent") == 0
    assert checkpoint_step(run / "checkpoint-10") == 10 and checkpoint_step(run / "ckpt-10") == 10
    assert checkpoint_step(run / "checkpoint-x") is None and checkpoint_step(run / "probe-10") is None
    assert checkpoint_dir(run, 2) == run / "ckpt-2" and checkpoint_dir(run, 30) == run / "checkpoint-30"


def test_run_layout__band_runs_and_checkpoints_from_base_in_run_order(tmp_path):
    layout = RunLayout(tmp_path)
    for band, seed in (("hard", 0), ("easy", 1), ("easy", 0)):
        run = layout.band_run(band, seed)
        _ckpt(run, 4), _ckpt(run, 2, name="ckpt" if band == "easy" else "checkpoint")
        (run / "metrics.jsonl").write_text("")
    _ckpt(layout.band_run("medium", 0), 2)  # no metrics log: not a band run
    assert list(layout.band_runs()) == ["bands/easy/seed0", "bands/easy/seed1", "bands/hard/seed0"]
    names = [layout.name_of(c) for c in layout.checkpoints()]
    # keys name a model after n updates the same way whatever its directory is called
    assert names[0] == "base" and names[1:3] == ["bands/easy/seed0/checkpoint-2", "bands/easy/seed0/checkpoint-4"]
    assert len(names) == 1 + 3 * 2 + 1  # every band run's complete checkpoints, base first
