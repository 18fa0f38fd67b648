"""Shared fixtures, one of each per test session: smoke run directories (base model + bands; one of them
with stated confidences and abstaining), pretrained in the beyond-range setting the studies built on them read
(chains longer than pretraining saw), and a smoke band study (in range, like the default).

The tests run on pytest-xdist workers (``-n auto`` in pyproject.toml; ``-n 0`` runs them in this process). Each
run directory is built once per session, by whichever worker asks first, and each worker gets its own copy:
tests record further stages in them."""

import os

# Tiny models run fastest on one thread, and on a 2-core machine a second busy process
# makes multi-threaded OpenMP/BLAS spin (seen: a 20 s smoke study took 9 minutes), so the
# tests pin one thread. The variables must be set before torch or numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import shutil  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from filelock import FileLock  # noqa: E402

from experiments import bands, pretrain  # noqa: E402
from experiments.harness.cli import preset_args  # noqa: E402
from experiments.harness.executors import usable_cpus  # noqa: E402
from probes.models import offline_mode  # noqa: E402

torch.set_num_threads(1)
offline_mode()

MAX_WORKERS = 4
"""``-n auto``'s cap: the suite's longest chain (the smoke study, then its tests) leaves more workers idle, and
each holds torch, transformers, TransformerLens and sae_lens in memory."""


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: the CPUs this process may use (its affinity, which psutil's count ignores), at most MAX_WORKERS."""
    return min(usable_cpus(), MAX_WORKERS)


def built(tmp_path_factory, name: str) -> Path:
    """Where run directory ``name`` is built for the whole session (every worker's), and never written after."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "built" / name / "run"


def built_once(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """This worker's copy of run directory ``name``, which ``build(path)`` makes once per test session: the first
    worker to ask builds it under a file lock while the others wait. ``copytree`` keeps modification times, which
    a checkpoint's identity holds, so the copy keeps every cache."""
    run = built(tmp_path_factory, name)
    run.parent.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(run.parent.with_suffix(".lock")):
        if not (run.parent / "done").exists():
            shutil.rmtree(run, ignore_errors=True)
            build(run)
            (run.parent / "done").touch()
    own = tmp_path_factory.mktemp(name) / "run"
    shutil.copytree(run, own)
    return own


def _base_and_bands(run: Path, **pretrain_fields) -> None:
    pretrain.main(
        preset_args(
            pretrain.PretrainArgs,
            pretrain.PRESETS,
            "smoke",
            out=run,
            **pretrain.BEYOND_RANGE["smoke"],
            **pretrain_fields,
        )
    )
    bands.main(preset_args(bands.BandArgs, bands.PRESETS, "smoke", run=run))


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    return built_once(tmp_path_factory, "smoke", _base_and_bands)


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
    return built_once(tmp_path_factory, "signals", lambda run: _base_and_bands(run, confidence=True, abstain_frac=0.1))


def _smoke_study(out: Path) -> None:
    """One uninterrupted smoke band study, its independent jobs (GRPO runs, matching, attribution) on two worker
    processes, as the study runs by default."""
    from experiments import band_study

    band_study.main(
        preset_args(band_study.BandStudyArgs, band_study.PRESETS, "smoke", out=out, executor="pool", workers=2)
    )


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> tuple[Path, dict]:
    """(run dir, results.json's content) of the smoke band study."""
    run = built_once(tmp_path_factory, "study", _smoke_study)
    return run, json.loads((run / "results.json").read_text())


def _remedies_study(out: Path, study: Path) -> None:
    from experiments import remedies

    shutil.copytree(study, out)
    remedies.main(preset_args(remedies.RemediesArgs, remedies.PRESETS, "smoke", run=out, workers=2))


@pytest.fixture(scope="session")
def remedies_study(tmp_path_factory, smoke_study) -> tuple[Path, object, dict[Path, bytes]]:
    """(run dir, result, the band study's metrics and gain attribution files as they were before) of the remedies
    study at smoke scale, on a copy of the smoke band study."""
    from experiments.analysis.remedies_results import RemediesResult
    from probes.layout import RunLayout

    study = built(tmp_path_factory, "study")  # as the band study left it, before any test wrote into a copy
    run = built_once(tmp_path_factory, "remedies", lambda out: _remedies_study(out, study))
    kept = [p for name in ("metrics.jsonl", "gain_attribution.json") for p in run.glob(f"bands/*/*/{name}")]
    before = {p: (study / p.relative_to(run)).read_bytes() for p in kept}
    return run, RemediesResult.from_json(json.loads(RunLayout(run).remedies.results.read_text())), before
