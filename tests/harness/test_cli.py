import dataclasses
import json
import subprocess
import sys

import pytest

from experiments import bands
from experiments.analysis.profile import profile_lines
from experiments.harness import cli, tally
from experiments.pretrain import PRESETS, PretrainArgs


def parse(argv):
    return cli.parse(PretrainArgs, PRESETS, argv)


def test_parse__preset_then_flags_override():
    args = parse(["--preset", "smoke", "--steps", "300", "--ops", "+", "*", "--out", "x"])
    assert args.steps == 300 and args.ops == ("+", "*") and args.d_model == PRESETS["smoke"]["d_model"]
    assert str(args.out) == "x"


def test_field_docs__every_field_has_help():
    docs = cli.field_docs(PretrainArgs)
    assert set(docs) == {f.name for f in dataclasses.fields(PretrainArgs)}
    assert "prime modulus" in docs["p"]


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--steps", "-3"], "steps"),
        (["--batch-size", "0"], "batch_size"),
        (["--k-train-max", "0"], "k_train_max"),
        (["--k-train-max", "8", "--k-eval-max", "5"], "k_eval_max"),
        (["--p", "12"], "p: 12 is not prime"),
        (["--direct-frac", "1.5"], "direct_frac"),
        (["--n-heads", "3"], "n_heads"),
    ],
)
def test_parse__invalid_values_exit_2_naming_the_field(argv, field, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert field in err and len(err.splitlines()) == 1


def test_parse__unknown_preset_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        parse(["--preset", "huge"])
    assert exc.value.code == 2 and "huge" in capsys.readouterr().err


def run_module(*argv):
    return subprocess.run([sys.executable, "-m", "experiments.pretrain", *argv], capture_output=True, text=True)


def test_main__bad_value_writes_no_files(tmp_path):
    out = tmp_path / "run"
    res = run_module("--preset", "smoke", "--out", str(out), "--p", "9")
    assert res.returncode == 2 and "p: 9 is not prime" in res.stderr
    assert not out.exists()


def test_main__unwritable_out_dir_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = run_module("--preset", "smoke", "--out", str(blocker / "run"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"error: {blocker / 'run'}: not writable ({blocker} is not a writable directory)"
    ]


def test_parse__config_file_sits_between_preset_and_flags(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"steps": 300, "lr": 0.002}')
    args = parse(["--preset", "smoke", "--config", str(cfg), "--lr", "0.003"])
    assert args.steps == 300 and args.lr == 0.003 and args.d_model == PRESETS["smoke"]["d_model"]


def study(argv):
    from experiments import band_study

    return cli.parse(band_study.BandStudyArgs, band_study.PRESETS, argv)


def test_study_config__one_section_per_stage_reaches_each_stage(tmp_path):
    cfg = tmp_path / "study.json"
    cfg.write_text('{"pretrain": {"p": 13, "seed": 5, "ops": ["+", "*"]}, "grpo": {"lr": 5e-05}, "seeds": [0, 1]}')
    args = study(["--preset", "smoke", "--config", str(cfg), "--out", str(tmp_path / "run")])
    assert args.seeds == (0, 1)
    pre = args.pretrain_args
    assert (pre.p, pre.seed, pre.ops, pre.out) == (13, 5, ("+", "*"), tmp_path / "run")
    assert pre.d_model == PRESETS["smoke"]["d_model"]  # the rest of the stage preset stays
    g = args.grpo_args("hard", 1)
    assert (g.lr, g.band, g.seed, g.steps) == (5e-05, "hard", 1, args.grpo_steps)
    assert (
        args.bands_args.candidates_per_k == bands.PRESETS["smoke"]["candidates_per_k"]
    )  # no section: the stage's smoke preset


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ('{"pretrain": {"pp": 13}}', "pretrain.pp"),
        ('{"pretraining": {"p": 13}}', "pretraining"),
        ('{"grpo": {"seed": 3}}', "grpo.seed"),
        ('{"pretrain": {"p": 12}}', "p: 12 is not prime"),
    ],
)
def test_study_config__unknown_or_bad_keys_exit_2_naming_the_key(tmp_path, config, named, monkeypatch, capsys):
    """The band study's command line, in this process (a subprocess per case cost ~7 s of imports each)."""
    from experiments import band_study

    cfg = tmp_path / "study.json"
    cfg.write_text(config)
    monkeypatch.setattr(
        sys, "argv", ["band_study", "--preset", "smoke", "--config", str(cfg), "--out", str(tmp_path / "r")]
    )
    with pytest.raises(SystemExit) as stop:
        cli.run(band_study.main, band_study.BandStudyArgs, band_study.PRESETS)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and named in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_stage_clock__a_resumed_study_adds_its_stages_to_the_first_invocations(tmp_path, monkeypatch, capsys):
    """Two invocations (the second a resume that redoes one stage): the profile keeps both, and the table sums a
    stage over them instead of reporting only the last invocation's time."""
    log, clock = tmp_path / "profile.jsonl", [0.0]
    monkeypatch.setattr(cli.time, "perf_counter", lambda: clock[0])
    first = cli.StageClock("study", log)
    for stage, seconds, (kind, tokens) in (("train", 2.0, ("trained", 40)), ("read", 3.0, ("sampled", 30))):
        first(stage)
        tally.add(kind, tokens)
        clock[0] += seconds
    first.finish()
    clock[0] = 100.0
    second = cli.StageClock("study", log)
    second.invocation = "resumed"
    second("read")
    clock[0] += 1.0
    second.finish()
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["stage"], r["seconds"]) for r in rows] == [("train", 2.0), ("read", 3.0), ("read", 1.0)]
    assert [r["tokens"] for r in rows[:2]] == [{"sampled": 0, "trained": 40}, {"sampled": 30, "trained": 0}]
    lines = profile_lines(log)
    assert lines[0].startswith("Wall time: 6 s over 2 invocations")
    assert "| train | 2 | 33% | 0 | 40 | 20 |" in lines and "| read | 4 | 67% | 30 | 0 | 8 |" in lines
    assert "[study      2 s] read" in capsys.readouterr().out
