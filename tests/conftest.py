"""Shared fixtures: one smoke run directory (base model + bands) per test session."""

from pathlib import Path

import pytest
import torch

from experiments import bands, pretrain

# Tiny models run fastest on one thread, and a second busy process on a 2-core machine
# makes multi-threaded BLAS spin; tests pin one thread for speed and repeatability.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("smoke") / "run"
    pretrain.main(pretrain.PretrainArgs(out=run, **pretrain.PRESETS["smoke"]))
    bands.main(bands.BandArgs(run=run, **bands.PRESETS["smoke"]))
    return run
