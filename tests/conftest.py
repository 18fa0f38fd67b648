"""Shared fixtures, one of each per test session: smoke run directories (base model + bands; one of them
with stated confidences and abstaining), pretrained in the beyond-range setting the studies built on them read
(chains longer than pretraining saw), and a smoke band study (in range, like the default)."""

import os
import time

# Tiny models run fastest on one thread, and on a 2-core machine a second busy process
# makes multi-threaded OpenMP/BLAS spin (seen: a 20 s smoke study took 9 minutes), so the
# tests pin one thread. The variables must be set before torch or numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from experiments import bands, pretrain  # noqa: E402
from experiments.harness.cli import preset_args  # noqa: E402
from probes.models import offline_mode  # noqa: E402

torch.set_num_threads(1)
offline_mode()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("smoke") / "run"
    pretrain.main(
        preset_args(pretrain.PretrainArgs, pretrain.PRESETS, "smoke", out=run, **pretrain.BEYOND_RANGE["smoke"])
    )
    bands.main(preset_args(bands.BandArgs, bands.PRESETS, "smoke", run=run))
    return run


@pytest.fixture(scope="session")
def copy_run(smoke_run):
    """A function copying the smoke run's base model and band table to a new run directory whose config.json holds
    only how those were made: other tests record further stages in the shared smoke run as they go, and a study
    that records the same stage with other arguments would refuse the copy."""

    def make(dest: Path) -> Path:
        shutil.copytree(smoke_run / "base", dest / "base")
        (dest / "bands").mkdir(parents=True)
        shutil.copy(smoke_run / "bands" / "table.json", dest / "bands" / "table.json")
        config = json.loads((smoke_run / "config.json").read_text())
        config["stages"] = {k: v for k, v in config["stages"].items() if k in ("pretrain", "bands")}
        (dest / "config.json").write_text(json.dumps(config, indent=2))
        return dest

    return make


@pytest.fixture(scope="session")
def signals_run(tmp_path_factory) -> Path:
    """A smoke run whose completions state a confidence and may abstain (10% in pretraining), with bands."""
    run = tmp_path_factory.mktemp("signals") / "run"
    pretrain.main(
        preset_args(
            pretrain.PretrainArgs,
            pretrain.PRESETS,
            "smoke",
            out=run,
            confidence=True,
            abstain_frac=0.1,
            **pretrain.BEYOND_RANGE["smoke"],
        )
    )
    bands.main(preset_args(bands.BandArgs, bands.PRESETS, "smoke", run=run))
    return run


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> tuple[Path, dict, float]:
    """(run dir, results, seconds) of one uninterrupted smoke band study, its independent jobs (GRPO runs,
    matching, attribution) on two worker processes: the test process leaves the second core idle otherwise."""
    from experiments import band_study

    out = tmp_path_factory.mktemp("study") / "run"
    start = time.perf_counter()
    res = band_study.main(
        preset_args(band_study.BandStudyArgs, band_study.PRESETS, "smoke", out=out, executor="pool", workers=2)
    )
    return out, res, time.perf_counter() - start


@pytest.fixture(scope="session")
def remedies_study(tmp_path_factory, smoke_study) -> tuple[Path, object, dict[Path, bytes]]:
    """(run dir, result, the band study's metrics and gain attribution files as they were before) of the remedies
    study at smoke scale, on a copy of the smoke band study."""
    from experiments import remedies

    out = tmp_path_factory.mktemp("remedies") / "run"
    shutil.copytree(smoke_study[0], out)
    kept = [p for name in ("metrics.jsonl", "gain_attribution.json") for p in out.glob(f"bands/*/*/{name}")]
    before = {p: p.read_bytes() for p in kept}
    res = remedies.main(preset_args(remedies.RemediesArgs, remedies.PRESETS, "smoke", run=out, workers=2))
    return out, res, before
