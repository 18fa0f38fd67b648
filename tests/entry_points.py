"""A stage's command line run in this process, as ``python -m experiments.<module> ...`` runs it (through
``cli.run``), for tests of what bad input prints: a subprocess per case cost ~7 s of imports
(tests/harness/test_cli.py keeps real subprocesses for the entry point itself)."""

import contextlib
import dataclasses
import importlib
import io
import subprocess
import sys

from experiments.harness import cli


def run_entry(module: str, *argv: str) -> subprocess.CompletedProcess:
    """Exit code and stderr of ``python -m experiments.<module> *argv``."""
    mod = importlib.import_module(f"experiments.{module}")
    args_cls = next(
        v
        for k, v in vars(mod).items()
        if k.endswith("Args") and dataclasses.is_dataclass(v) and v.__module__ == mod.__name__
    )
    err, code, saved = io.StringIO(), 0, sys.argv
    sys.argv = [module, *argv]
    try:
        with contextlib.redirect_stderr(err):
            cli.run(mod.main, args_cls, mod.PRESETS)
    except SystemExit as stop:
        code = stop.code
    finally:
        sys.argv = saved
    return subprocess.CompletedProcess([module, *argv], code, "", err.getvalue())


def single_error_line(res: subprocess.CompletedProcess) -> str:
    """The one line a refusal prints: exit code 2 and nothing on stderr but one ``error:`` line."""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), res.stderr[-1500:]
    return lines[0]
