"""Smoke: every notebook runs top to bottom against a smoke run, never writes into it, and is stored without outputs."""

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient

from experiments import calibration, pruning, refinement, trace_length, utility, value_study
from experiments.harness.cli import preset_args

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _listing(root: Path) -> dict[str, int]:
    """Every path under root with its mtime (ns): any write, new file or deletion changes it."""
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def study_run(tmp_path_factory, remedies_study) -> Path:
    """A copy of the session's smoke band study and its remedies study, with the other studies that build on it."""
    out = tmp_path_factory.mktemp("nb_study") / "run"
    shutil.copytree(remedies_study[0], out)
    value_study.main(preset_args(value_study.ValueArgs, value_study.PRESETS, "smoke", run=out))
    trace_length.main(preset_args(trace_length.TraceLengthArgs, trace_length.PRESETS, "smoke", run=out))
    pruning.main(preset_args(pruning.PruningArgs, pruning.PRESETS, "smoke", run=out))
    refinement.main(preset_args(refinement.RefinementArgs, refinement.PRESETS, "smoke", run=out))
    return out


@pytest.fixture(scope="module")
def signals_studies(signals_run) -> Path:
    calibration.main(preset_args(calibration.CalibrationArgs, calibration.PRESETS, "smoke", run=signals_run))
    utility.main(preset_args(utility.UtilityArgs, utility.PRESETS, "smoke", run=signals_run))
    return signals_run


def test_notebooks__numbered_and_stored_without_outputs():
    assert [p.name[:3] for p in NOTEBOOKS] == [f"0{i}_" for i in range(1, 10)]
    for path in NOTEBOOKS:
        assert '"output_type"' not in path.read_text(), f"{path.name} has stored outputs"
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name
        first = nbformat.read(path, as_version=4).cells[0].source
        assert "open_run(" in first  # the one setup helper, not a copied cell


@pytest.fixture(scope="module")
def kernel(study_run, signals_studies):
    """One kernel, started in the repository, for every notebook: starting one and importing torch, transformers,
    TransformerLens and sae_lens in it took most of each notebook's run. Each notebook starts from an emptied
    namespace (``%reset -f``), so a name it uses without defining still fails."""
    env = {"BANDLENS_RUN": str(study_run), "BANDLENS_SIGNALS_RUN": str(signals_studies), "OMP_NUM_THREADS": "1"}
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(REPO), env=os.environ | env)
    yield km
    km.shutdown_kernel(now=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks__execute_without_error_and_leave_the_run_untouched(path, study_run, signals_studies, kernel):
    before = _listing(study_run) | {f"signals/{k}": v for k, v in _listing(signals_studies).items()}
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))
    NotebookClient(nb, km=kernel, timeout=120).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    after = _listing(study_run) | {f"signals/{k}": v for k, v in _listing(signals_studies).items()}
    assert after == before, "a notebook wrote into a run directory"


def test_kernel__a_notebook_cannot_use_a_name_an_earlier_notebook_defined(kernel):
    """The shared kernel keeps the notebooks independent: a name defined by one is gone in the next."""

    def run(source: str) -> list[dict]:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%reset -f"), nbformat.v4.new_code_cell(source)])
        NotebookClient(nb, km=kernel, timeout=60, allow_errors=True).execute()
        return [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]

    assert run("import json\nleft_behind = json.dumps(1)") == []
    assert [e["ename"] for e in run("left_behind")] == ["NameError"]
    assert [e["ename"] for e in run("json")] == ["NameError"]


def test_open_run__reads_relative_paths_from_the_repository_and_never_makes_a_study(tmp_path, monkeypatch, study_run):
    """A kernel starts in notebooks/: a relative BANDLENS_RUN still means the repository's runs/, and a missing
    study is refused with the commands that make it, with nothing run or written."""
    from probes.layout import RunDirError
    from probes.notebook import REPO, open_run

    monkeypatch.chdir(tmp_path)
    name = f"runs/absent-{tmp_path.name}"
    with pytest.raises(RunDirError, match=f"python -m experiments.band_study --preset smoke --out {REPO / name}"):
        open_run(name)
    assert not (REPO / name).exists() and not list(tmp_path.iterdir())
    assert open_run(study_run).root == study_run  # an absolute path is taken as it is
    with pytest.raises(RunDirError, match="no value_study results"):
        open_run(study_run.parent / "missing", needs=("value_study",))
