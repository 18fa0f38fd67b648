"""The run directory: atomic writes, the resolved config, and provenance.

Every artifact is written to a temporary sibling and renamed into place, so a killed
process leaves either the old artifact or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

RUN_FORMAT = 1
"""Version of the run-directory layout; bumped when a stage's artifacts change shape."""

TRACKED_PACKAGES = ("torch", "transformers", "transformer-lens", "sae-lens", "numpy")


class RunDirError(Exception):
    """A run directory that cannot be used as asked (its message names the file)."""


def clear_stale_temps(path: Path) -> None:
    """Remove temp siblings of ``path`` left by a killed writer (``.<name>.*.tmp``)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file atomically: temp file in the same directory, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clear_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def finite_or_none(obj: object) -> object:
    """Replace nan/inf (not valid JSON) by None, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_none(v) for v in obj]
    return obj


def write_json(path: Path, obj: object) -> None:
    """Strict JSON (nan and inf become null), written atomically."""
    atomic_write_text(path, json.dumps(finite_or_none(obj), indent=2, allow_nan=False) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RunDirError(f"{path}: unreadable JSON ({e})") from None


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clear_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    tmp.chmod(0o755)
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def package_versions() -> dict[str, str]:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def git_sha() -> str:
    """Commit of the bandlens checkout, or 'unknown' outside a git tree."""
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return res.stdout.strip() if res.returncode == 0 else "unknown"


def check_writable(out: Path) -> None:
    """Fail early (before any file is written) when ``out`` cannot be created or written."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise RunDirError(f"{out}: not writable ({probe} is not a writable directory)")


def init_run(out: Path, stage: str, args: object) -> dict:
    """Write ``<out>/config.json`` before any work; refuse a run made with other args.

    Rerunning with the same arguments resumes; different arguments would mix two
    studies in one directory, so they stop with an error instead of overwriting.
    """
    resolved = json.loads(json.dumps(dataclasses.asdict(args), default=str))  # type: ignore[call-overload]
    for where in ("out", "run"):  # where a run lives is not part of what it is
        resolved.pop(where, None)
    config_path = out / "config.json"
    if config_path.exists():
        existing = read_json(config_path)
        if existing.get("format") != RUN_FORMAT:
            raise RunDirError(f"{config_path}: run format {existing.get('format')} != {RUN_FORMAT}")
        if existing.get("stages", {}).get(stage, resolved) != resolved:
            raise RunDirError(
                f"{config_path}: run was made with different {stage} arguments; "
                "use a new --out or delete the run"
            )
    else:
        existing = {"format": RUN_FORMAT, "stages": {}}
    existing["stages"][stage] = resolved
    existing["versions"] = package_versions()
    existing["git_sha"] = git_sha()
    write_json(config_path, existing)
    return existing
