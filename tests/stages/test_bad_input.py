"""Bad input stops with one line naming the file or field, exit code 2, and touches nothing."""

import dataclasses
import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from entry_points import run_entry as run

from experiments.harness import cli


def snapshot(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*") if p.is_file()}


def one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, res.stderr[-1500:]
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and all(n in lines[0] for n in needles), res.stderr[-1500:]


@pytest.fixture
def byo(smoke_study, tmp_path) -> dict[str, Path]:
    """A user's checkpoint and SAE (copies of the smoke study's), and an existing output dir."""
    run = smoke_study[0]
    ckpt, sae, out = tmp_path / "ckpt", tmp_path / "sae", tmp_path / "out"
    shutil.copytree(run / "base", ckpt)
    shutil.copytree(next(p for p in (run / "sae").iterdir() if p.name.startswith("batchtopk")), sae)
    out.mkdir()
    (out / "features.json").write_text("{}")
    return {"ckpt": ckpt, "sae": sae, "out": out}


def feature_study(byo) -> subprocess.CompletedProcess:
    return run(
        "feature_study",
        "--preset",
        "smoke",
        "--checkpoint",
        str(byo["ckpt"]),
        "--sae",
        str(byo["sae"]),
        "--out",
        str(byo["out"]),
    )


def test_truncated_checkpoint(byo):
    weights = byo["ckpt"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    before = snapshot(byo["out"])
    one_line_error(feature_study(byo), str(weights))
    assert snapshot(byo["out"]) == before


def test_truncated_sae(byo):
    weights = byo["sae"] / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    one_line_error(feature_study(byo), str(weights))


@pytest.mark.parametrize(
    "field, value, needle", [("hook_name", "blocks.7.hook_resid_post", "does not exist"), ("d_in", 999, "d_in 999")]
)
def test_sae_that_does_not_fit_the_model(byo, field, value, needle):
    cfg_path = byo["sae"] / "cfg.json"
    cfg = json.loads(cfg_path.read_text())
    (cfg["metadata"] if field == "hook_name" else cfg)[field] = value
    cfg_path.write_text(json.dumps(cfg))
    before = snapshot(byo["out"])
    res = feature_study(byo)
    if field == "d_in":  # sae_lens itself refuses weights of another shape: still one line, naming the file
        one_line_error(res, str(byo["sae"]))
    else:
        one_line_error(res, str(cfg_path), needle)
    assert snapshot(byo["out"]) == before


def test_run_dir_from_an_incompatible_version(smoke_study, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(smoke_study[0] / "base", old / "base")
    config = json.loads((smoke_study[0] / "config.json").read_text()) | {"format": 0}
    (old / "config.json").write_text(json.dumps(config))
    before = snapshot(old)
    one_line_error(run("pretrain", "--preset", "smoke", "--out", str(old)), str(old / "config.json"), "run format 0")
    assert snapshot(old) == before


def test_config_file_with_unknown_keys(tmp_path):
    cfg = tmp_path / "my.json"
    cfg.write_text(json.dumps({"steps": 5, "stepz": 7}))
    out = tmp_path / "run"
    one_line_error(run("pretrain", "--preset", "smoke", "--config", str(cfg), "--out", str(out)), str(cfg), "stepz")
    assert not out.exists()


STAGES = sorted(p.stem for p in (Path(__file__).parents[2] / "experiments").glob("*.py") if p.stem != "__init__")


def stage(module: str):
    """(the stage's module, its Args class)."""
    mod = importlib.import_module(f"experiments.{module}")
    return mod, next(
        v
        for k, v in vars(mod).items()
        if k.endswith("Args") and dataclasses.is_dataclass(v) and v.__module__ == mod.__name__
    )


@pytest.mark.parametrize("module", STAGES)
def test_help__every_stage_prints_its_usage_and_exits_0(module, capsys, monkeypatch):
    """A % in a field's docstring once made argparse's --help crash on six stages."""
    mod, cls = stage(module)
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with pytest.raises(SystemExit) as stop:
        cli.run(mod.main, cls, mod.PRESETS)
    assert stop.value.code == 0 and "usage:" in capsys.readouterr().out


BAD = [
    ("seed", ("--seed", "-1")),
    ("seeds", ("--seeds", "0", "-1")),
    ("device", ("--device", "tpu")),
    ("device", ("--device", "cuda:7")),
]


@pytest.mark.parametrize("module", STAGES)
def test_bad_seed_or_device__every_stage_refuses_in_one_line_before_writing(module, tmp_path):
    """Seeds below 0 and devices this machine lacks stop before anything is written: a config.json left behind
    would lock the directory against the corrected command."""
    mod, cls = stage(module)
    fields = {f.name for f in dataclasses.fields(cls)}
    out_flag = next((f"--{f}" for f in ("out", "run") if f in fields), None)
    cases = [(field, flags) for field, flags in BAD if field in fields]
    if not cases or out_flag is None:
        pytest.skip(f"{module} takes no seed, device or output directory")
    preset = "smoke" if "smoke" in mod.PRESETS else "default"
    for field, flags in cases:
        target = tmp_path / "target"
        one_line_error(run(module, "--preset", preset, out_flag, str(target), *flags), field)
        assert not target.exists() or not any(target.iterdir()), (module, flags)
