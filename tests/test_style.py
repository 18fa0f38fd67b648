"""The code's layout is ruff's: lines of at most 120 characters, formatted, lint-clean (the pinned ruff)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREES = ["experiments", "probes", "tests", "scripts"]


def test_ruff__check_and_format_pass_on_every_tree():
    check = subprocess.run([sys.executable, "-m", "ruff", "check", *TREES], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout[-3000:]
    fmt = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *TREES], cwd=ROOT, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout[-3000:]
