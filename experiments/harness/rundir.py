"""The run directory, write side: one family of atomic writers, config.json and provenance.

Every artifact is written to a temporary sibling and renamed into place, so a killed
process leaves either the old artifact or the new one, never half of one. Paths and
file names live in ``probes.layout`` (the read side), shared with every reader.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from probes.layout import CONFIG, RunDirError, read_json, read_jsonl

RUN_FORMAT = 1
"""Version of the run-directory layout; bumped when a stage's artifacts change shape."""

TRACKED_PACKAGES = ("torch", "transformers", "transformer-lens", "sae-lens", "numpy")


_HOST = platform.node().split(".")[0]


def _temp_prefix(path: Path) -> str:
    """A temp sibling's name names its writer (host and pid), so that only a dead writer's temps count as stale."""
    return f".{path.name}.@{_HOST}-{os.getpid()}."


def _writer_alive(temp: Path, path: Path) -> bool:
    """Whether the process that made this temp may still be writing it (another host's writer: assumed so)."""
    named = re.match(rf"\.{re.escape(path.name)}\.@([^.]*)-(\d+)\.", temp.name)
    if named is None:  # an older name, without its writer
        return False
    host, pid = named[1], int(named[2])
    if host != _HOST or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and is another user's
        pass
    return True


def clear_stale_temps(path: Path) -> None:
    """Remove temp siblings of ``path`` left by a killed writer (``.<name>.*.tmp*``). A live writer's temp stays:
    two pool workers can write the same artifact at once (each builds a shared cache it found missing)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp*"):
        if not _writer_alive(stale, path):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling path; it replaces ``path`` only if the block succeeds.

    ``suffix`` ends the temporary name (writers such as ``savefig`` read the format from it).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    clear_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp" + suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clear_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp"))
    tmp.chmod(0o755)
    try:
        yield tmp
        while True:  # a directory in the way (perhaps another worker's, just renamed there) is moved aside
            try:
                os.replace(tmp, path)
                break
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp"))
            with contextlib.suppress(FileNotFoundError):  # another writer moved it first
                os.replace(path, old)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (fsynced before the rename)."""
    with atomic_file(path) as tmp, tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


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
    write_text(path, json.dumps(finite_or_none(obj), indent=2, allow_nan=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """A JSON-lines file replaced atomically."""
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def append_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """Append whole lines; a line cut short by a kill is skipped by ``read_jsonl``."""
    with path.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Keep rows with step <= max_step: what a resumed run will write again is dropped."""
    if path.exists():
        write_jsonl(path, [r for r in read_jsonl(path) if r["step"] <= max_step])


def cached_json(path: Path, make) -> dict | list:
    """Read ``path`` if a previous run wrote it, else compute, write and return it."""
    if path.exists():
        return read_json(path)
    value = make()
    write_json(path, value)
    return value


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


def resolved(args: object) -> dict:
    """A stage's arguments as plain JSON, without where the run lives and how it is run (the class's
    ``HOW_TO_RUN`` fields, e.g. an executor): neither is part of what the run is, so neither is compared on resume."""
    out = json.loads(json.dumps(dataclasses.asdict(args), default=str))  # type: ignore[call-overload]
    for where in ("out", "run", *getattr(type(args), "HOW_TO_RUN", ())):
        out.pop(where, None)
    return out


def init_run(out: Path, stage: str, args: object, task: Mapping[str, Any] | None = None) -> dict:
    """Write ``<out>/config.json`` before any work; refuse a run made with other args.

    Rerunning with the same arguments resumes; different arguments would mix two
    studies in one directory, so they stop with an error instead of overwriting. A field
    added to a stage after the run was made counts as unchanged while it keeps its default
    (new knobs default to the old behaviour).
    """
    record = resolved(args)
    config_path = out / CONFIG
    if config_path.exists():
        existing = read_json(config_path)
        if existing.get("format") != RUN_FORMAT:
            raise RunDirError(f"{config_path}: run format {existing.get('format')} != {RUN_FORMAT}")
        before = existing.get("stages", {}).get(stage, record)
        added = resolved(type(args)()) if dataclasses.is_dataclass(args) else {}
        if {**{k: v for k, v in added.items() if k not in before}, **before} != record:
            raise RunDirError(
                f"{config_path}: run was made with different {stage} arguments; use a new --out or delete the run"
            )
    else:
        existing = {"format": RUN_FORMAT, "stages": {}}
    section = {"task": dict(task)} if task is not None else {}
    updated = {
        **existing,
        **section,
        "stages": {**existing["stages"], stage: record},
        "versions": package_versions(),
        "git_sha": git_sha(),
    }
    if updated != existing:  # unchanged: no write (parallel workers of one study all find their stage recorded)
        write_json(config_path, updated)
    return updated
