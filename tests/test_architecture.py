"""The rules of the layout, enforced: imports go one way, no import-time side effects,
stages are thin and self-contained, and nothing points outside the repository."""

import ast
import dataclasses
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import experiments
import probes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from import_graph import graph  # noqa: E402

STAGES = {f"experiments.{p.stem}" for p in (ROOT / "experiments").glob("*.py") if p.stem != "__init__"}
STEPS = {
    f"experiments.band_steps.{p.stem}"
    for p in (ROOT / "experiments" / "band_steps").glob("*.py")
    if p.stem != "__init__"
}
ORCHESTRATORS = {
    "experiments.band_study",
    "experiments.calibration",
    "experiments.utility",
    "experiments.remedies",
    "experiments.ingest",
    *STEPS,
}
"""Studies that run other stages through their ``main`` (and so may import them), and the band study's steps."""
STUDIES = ["band_study", "calibration", "pruning", "refinement", "remedies", "trace_length", "utility", "value_study"]
"""Every study, one visible unit: ``experiments/<s>.py``, its typed result in ``analysis/<a>_results.py`` and its
rendering in ``analysis/<a>_report.py``, where <a> is the study's name without ``_study``."""
SECTIONS = {"experiments.analysis.model_diffing_report"}
"""Report modules that render a section of a study's report rather than a study's own."""


def test_probes__never_import_experiments():
    offenders = {
        m: sorted(d)
        for m, d in graph().items()
        if m.startswith("probes") and any(x.startswith("experiments") for x in d)
    }
    assert offenders == {}


def test_harness_subpackages__import_only_the_ones_before_them():
    """harness's sub-packages follow the data: tasks, training, reading, engines, studies; none imports a later one."""
    order = [f"experiments.harness.{p}" for p in ("tasks", "training", "reading", "engines", "studies")]
    rank = lambda m: next((i for i, p in enumerate(order) if m.startswith(p + ".")), None)  # noqa: E731
    offenders = sorted(
        (m, d) for m, deps in graph().items() if rank(m) is not None for d in deps if (rank(d) or 0) > rank(m)
    )
    assert offenders == []


def test_stages__stay_under_400_lines():
    """A stage is thin (Args, presets, main and the steps only it takes); what grows moves into a library module."""
    long = {p.name: n for p in (ROOT / "experiments").glob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_library_code__never_imports_a_stage():
    """harness/ and analysis/ take small specs; only an orchestrating study imports stages."""
    offenders = {m: sorted(d & STAGES) for m, d in graph().items() if m not in ORCHESTRATORS and d & STAGES}
    assert offenders == {}


def test_imports__change_no_environment_and_register_nothing():
    """Importing every module leaves os.environ, sae_lens's registry and matplotlib's backend as they were."""
    code = (
        "import os, importlib, pkgutil, matplotlib, experiments, probes\n"
        "from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY as R\n"
        "env, reg, backend = dict(os.environ), set(R), dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        "for pkg in (experiments, probes):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))\n"
        "changed += ['matplotlib backend'] * (dict.__getitem__(matplotlib.rcParams, 'backend') != backend)\n"
        "print(changed, sorted(set(R) - reg))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[] []"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stages__frozen_args_with_documented_fields_presets_and_main(name):
    from experiments.harness.cli import field_docs

    module = importlib.import_module(name)
    args = [
        v
        for k, v in vars(module).items()
        if k.endswith("Args") and dataclasses.is_dataclass(v) and v.__module__ == name
    ]
    assert len(args) == 1 and args[0].__dataclass_params__.frozen
    assert set(field_docs(args[0])) == {f.name for f in dataclasses.fields(args[0])}
    assert isinstance(module.PRESETS, dict) and "default" in module.PRESETS and "smoke" in module.PRESETS
    assert callable(module.main)


def analysis_module(study: str, role: str) -> str:
    return f"experiments.analysis.{study.removesuffix('_study')}_{role}"


@pytest.mark.parametrize("study", STUDIES)
def test_studies__a_stage_a_typed_result_that_round_trips_json_and_a_report_that_only_renders(study):
    """The stage has its Args, PRESETS and main; the results module a frozen result dataclass with ``to_json`` and a
    ``from_json`` classmethod (each study's round trip is tested beside its results or its smoke run); the report
    imports no stage and writes nothing but its report file (``write_text``; figures through ``save_figure``)."""
    stage = importlib.import_module(f"experiments.{study}")
    args = [
        v
        for k, v in vars(stage).items()
        if k.endswith("Args") and dataclasses.is_dataclass(v) and v.__module__ == stage.__name__
    ]
    assert (
        len(args) == 1
        and args[0].__dataclass_params__.frozen
        and isinstance(stage.PRESETS, dict)
        and callable(stage.main)
    )

    results = importlib.import_module(analysis_module(study, "results"))
    typed = [
        v
        for v in vars(results).values()
        if isinstance(v, type)
        and v.__module__ == results.__name__
        and dataclasses.is_dataclass(v)
        and v.__dataclass_params__.frozen
        and callable(getattr(v, "to_json", None))
        and isinstance(inspect.getattr_static(v, "from_json", None), classmethod)
    ]
    assert typed, f"{results.__name__}: no frozen result dataclass with to_json and a from_json classmethod"

    report = analysis_module(study, "report")
    assert not graph()[report] & STAGES
    tree = ast.parse((ROOT / f"{report.replace('.', '/')}.py").read_text())
    writers = {
        a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module == "experiments.harness.rundir"
        for a in n.names
    }
    assert writers <= {"write_text"}


def test_studies__every_report_module_belongs_to_a_listed_study():
    """A new study's report is listed in ``STUDIES`` and so held to the contract above."""
    reports = {m for m in graph() if m.startswith("experiments.analysis.") and m.endswith("_report")}
    assert reports - SECTIONS == {analysis_module(s, "report") for s in STUDIES}


def test_every_module_imports():
    for pkg in (experiments, probes):
        for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            importlib.import_module(m.name)


def test_repository__refers_to_no_file_outside_it():
    """No relative path climbs out of the checkout, and the design doc cited is the repo's own."""
    text_files = [p for p in ROOT.rglob("*") if p.suffix in (".py", ".md", ".ipynb", ".toml") and ".venv" not in str(p)]
    text_files.remove(Path(__file__).resolve())  # this test names what it looks for
    for path in text_files:
        text = path.read_text()
        assert "../" not in text, path
        assert "DESIGN.md" not in text.replace("docs/DESIGN.md", ""), path


@pytest.mark.parametrize(
    "name", sorted(n for n in STAGES if "ClassVar" in (ROOT / f"{n.replace('.', '/')}.py").read_text())
)
def test_stages__load_as_a_spawned_workers_main_module(name):
    """A pool worker (spawn) re-runs the parent's ``python -m`` module as ``__mp_main__`` while no module of
    that name is registered; a ClassVar written as a string annotation (``from __future__ import annotations``)
    then reads as a dataclass field: the worker's Args differ, or it dies on import (a mutable default)."""
    script = (
        "import dataclasses, json, runpy, sys\n"
        "spawned = runpy.run_module(sys.argv[1], run_name='__mp_main__', alter_sys=True)\n"
        "print(json.dumps({k: [f.name for f in dataclasses.fields(v)] for k, v in spawned.items()\n"
        "                  if k.endswith('Args') and dataclasses.is_dataclass(v) and v.__module__ == '__mp_main__'}))\n"
    )
    run = subprocess.run([sys.executable, "-c", script, name], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    spawned, module = json.loads(run.stdout.strip().splitlines()[-1]), importlib.import_module(name)
    assert spawned and spawned == {k: [f.name for f in dataclasses.fields(getattr(module, k))] for k in spawned}
