import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from sae_lens import SAE

from experiments import train_sae
from experiments.harness import cli
from experiments.harness.reading.sources import checkpoint_tag
from experiments.harness.tasks.arith import TaskSpec
from experiments.harness.training.model import ModelSpec, build_model, build_tokenizer, save_model
from experiments.train_sae import PRESETS, TrainSAEArgs
from probes.models import CheckpointError

SMOKE = TrainSAEArgs(**PRESETS["smoke"])
ARCHS = ("batchtopk", "matryoshka", "temporal")


def smoke(run: Path, checkpoint: Path, **kw) -> TrainSAEArgs:
    return dataclasses.replace(SMOKE, run=run, checkpoint=str(checkpoint), **kw)


@pytest.fixture(scope="module")
def trained(smoke_run, tmp_path_factory):
    """One run directory with an SAE of every architecture on the smoke base model."""
    run = tmp_path_factory.mktemp("sae") / "run"
    evals = {arch: train_sae.main(smoke(run, smoke_run / "base", arch=arch)) for arch in ARCHS}
    return run, evals


def test_main__writes_an_sae_lens_dir_with_evals_for_each_arch(trained, smoke_run):
    run, evals = trained
    for arch in ARCHS:
        sae_dir = run / "sae" / f"{arch}-{SMOKE.hook}"
        assert {"cfg.json", "sae_weights.safetensors", "train.json", "evals.json"} <= {
            p.name for p in sae_dir.iterdir()
        }
        sae = SAE.load_from_disk(sae_dir)
        assert sae.cfg.metadata.hook_name == SMOKE.hook
        assert sae.cfg.metadata.model_name == str((smoke_run / "base").resolve())
        assert json.loads((sae_dir / "evals.json").read_text()) == evals[arch]
        m = evals[arch]["metrics"]
        assert 0.0 < m["sae/fve"] <= 1.0 and m["sae/l0"] > 0 and 0.0 <= m["sae/dead_frac"] <= 1.0
        for cond in ("clean", "sae", "zero", "mean"):
            assert 0.0 <= m[f"splice/acc_{cond}"] <= 1.0 and m[f"splice/ce_{cond}"] > 0
        gap = m["splice/ce_zero"] - m["splice/ce_clean"]
        assert m["splice/ce_recovered_zero"] == pytest.approx((m["splice/ce_zero"] - m["splice/ce_sae"]) / gap)
        assert evals[arch]["timing"]["timing/sae_train_samples_per_s"] > 0
    config = json.loads((run / "config.json").read_text())
    assert config["stages"][f"sae/temporal-{SMOKE.hook}"]["arch"] == "temporal"


def test_main__activations_are_produced_once_per_checkpoint_and_hook(trained):
    run, evals = trained
    first, *rest = (evals[arch]["timing"] for arch in ARCHS)
    assert first["timing/activations_s"] > 0 and first["timing/probe_set_s"] > 0
    assert first["timing/activation_share"] > 0
    for timing in rest:  # later SAEs read the cache the first one paid for
        assert timing["timing/activations_s"] == 0 and timing["timing/probe_set_s"] == 0
        assert timing["timing/activation_share"] == 0
    assert len(list((run / "acts").glob("*/probe-*/" + SMOKE.hook + "/acts.npy"))) == 1


def test_main__rerun_returns_the_evals_without_training(trained, smoke_run, monkeypatch):
    run, evals = trained
    monkeypatch.setattr(train_sae, "train_sae", lambda *a, **k: pytest.fail("retrained a finished SAE"))
    assert train_sae.main(smoke(run, smoke_run / "base", arch="batchtopk")) == evals["batchtopk"]


def test_main__resumes_evals_for_a_trained_sae_without_retraining(trained, smoke_run, monkeypatch):
    run, evals = trained
    (run / "sae" / f"matryoshka-{SMOKE.hook}" / "evals.json").unlink()
    monkeypatch.setattr(train_sae, "train_sae", lambda *a, **k: pytest.fail("retrained a saved SAE"))
    again = train_sae.main(smoke(run, smoke_run / "base", arch="matryoshka"))
    assert again["metrics"] == evals["matryoshka"]["metrics"]


def test_main__transfer_to_an_identical_checkpoint_reproduces_the_evals(smoke_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(smoke_run / "base", copy)
    result = train_sae.main(smoke(tmp_path / "run", smoke_run / "base", transfer=(str(copy),)))
    own = {k: v for k, v in result["metrics"].items() if k.startswith(("sae/", "splice/")) and "train" not in k}
    assert result["transfer"][str(copy)] == pytest.approx(own)


def test_main__transfer_to_another_architecture_is_refused_before_training(smoke_run, tmp_path):
    tok = build_tokenizer(TaskSpec())
    other = tmp_path / "wide"
    save_model(build_model(ModelSpec(d_model=96, n_layers=2, n_heads=2, d_mlp=64), tok, seed=0), tok, other)
    with pytest.raises(CheckpointError, match="hidden_size"):
        train_sae.main(smoke(tmp_path / "run", smoke_run / "base", transfer=(str(other),)))
    assert not (tmp_path / "run" / "sae").exists()


def test_checkpoint_tag__inside_the_run_and_outside(tmp_path):
    run = tmp_path / "run"
    assert checkpoint_tag(run, run / "base") == "base"
    assert checkpoint_tag(run, run / "bands" / "easy" / "seed0" / "ckpt-10") == "bands__easy__seed0__ckpt-10"
    a, b = (
        checkpoint_tag(run, tmp_path / "x" / "ckpt"),
        checkpoint_tag(run, tmp_path / "y" / "ckpt"),
    )
    assert a.startswith("ext-ckpt-") and a != b


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--name", "a/b"], "name"),
        (["--top-k", "0"], "top_k"),
        (["--batch-size", "3"], "batch_size"),
        (["--k-min", "5", "--k-max", "2"], "k_min"),
        (["--arch", "gated"], "arch"),
    ],
)
def test_parse__invalid_values_exit_2_naming_the_field(argv, field, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.parse(TrainSAEArgs, PRESETS, argv)
    assert exc.value.code == 2 and field in capsys.readouterr().err


def test_parse__every_field_has_help_and_presets_are_valid():
    assert set(cli.field_docs(TrainSAEArgs)) == {f.name for f in dataclasses.fields(TrainSAEArgs)}
    for preset in PRESETS:
        args = cli.parse(
            TrainSAEArgs, PRESETS, ["--preset", preset, "--arch", "temporal", "--device", "cpu"]
        )  # gpu presets too
        assert args.sae_spec.arch == "temporal" and args.train_spec.batch_size == args.batch_size
