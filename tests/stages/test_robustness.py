"""Determinism and kill-and-resume of the whole smoke study (subprocesses, SIGKILL)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def study_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "experiments.band_study", "--preset", "smoke", "--out", str(out)]


def leftovers(run: Path) -> list[Path]:
    """Half-written artifacts: temp files or directories from an interrupted write."""
    return [p for p in run.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]


@pytest.fixture
def reference(smoke_study) -> Path:
    return smoke_study[0]


@pytest.mark.slow  # a second whole smoke study, in subprocesses
def test_band_study__killed_at_several_points_then_rerun_matches_uninterrupted(reference, tmp_path):
    """Also the same command, in fresh processes, reproducing the in-process study byte for byte."""
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # kill when each stage is under way: mid-pretraining, mid-GRPO, during SAE training, during model diffing
    for marker in ("pretrain_state.safetensors", "bands/medium/seed0/checkpoint-2", "acts", "diffing"):
        proc = subprocess.Popen(study_cmd(out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 120
        while not (out / marker).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"the study finished before reaching {marker}"
    assert not (out / "results.json").exists()
    res = subprocess.run(study_cmd(out), cwd=ROOT, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((out / "results.json").read_text()) == json.loads((reference / "results.json").read_text())
    weights = sorted(
        p.relative_to(reference)
        for p in reference.rglob("*.safetensors")
        if p.relative_to(reference).parts[0] != "acts"
    )
    assert weights and all(
        (out / w).read_bytes() == (reference / w).read_bytes() for w in weights
    )  # every model and dictionary
    assert leftovers(out) == []
