"""Command lines generated from frozen argument dataclasses.

Each field becomes a ``--flag`` whose help is the field's docstring; ``--preset`` picks
a named set of defaults, ``--config FILE.json`` sets fields between the preset and
explicit flags. A study whose Args declare ``SECTIONS`` (stage name -> stage Args)
takes one config section per stage, collected into its ``stages`` field. Bad values
stop with one line naming the field and exit code 2, before any file is written.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import inspect
import json
import sys
import textwrap
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import matplotlib
import torch

from experiments.harness import tally
from experiments.harness.rundir import append_jsonl
from probes.layout import RunDirError
from probes.models import CheckpointError, offline_mode

A = TypeVar("A")

USER_ERRORS = (RunDirError, CheckpointError)
"""Errors that mean "bad input", reported in one line with exit code 2."""


def check_device(name: str) -> None:
    """A torch device this machine has (``cpu``, ``cuda``, ``cuda:1``, ``mps``); else ValueError naming it."""
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: {name!r} is not a torch device (cpu, cuda, cuda:1, mps ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device: {name!r}, but this torch build or machine has no CUDA device (torch {torch.__version__})"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device: {name!r}, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device: {name!r}, but MPS is not available here")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: {name!r} is not supported (cpu, cuda, mps)")


def check_common(args: object) -> None:
    """The checks every stage's Args share: seeds are >= 0 (numpy's streams refuse negative ones, too late) and a
    device exists on this machine. Each stage's ``__post_init__`` calls it first, so a bad value stops before any
    file is written."""
    for name in ("seed", "seeds"):
        values = getattr(args, name, ())
        for seed in values if isinstance(values, tuple) else (values,):
            if not isinstance(seed, int) or seed < 0:
                raise ValueError(f"{name}: seeds must be integers >= 0, got {values}")
    if getattr(args, "device", ""):
        check_device(args.device)


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal under each field) of a dataclass."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _add_flag(parser: argparse.ArgumentParser, f: dataclasses.Field, hint: Any, doc: str) -> None:
    flag, doc = "--" + f.name.replace("_", "-"), doc.replace("%", "%%")  # argparse formats help with %
    if type(None) in typing.get_args(hint):  # Optional[X]: the flag takes an X
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    origin = typing.get_origin(hint)
    if hint is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=doc)
    elif origin is tuple:
        item = typing.get_args(hint)[0]
        parser.add_argument(flag, nargs="+", type=item, help=doc)
    elif origin is typing.Literal:
        parser.add_argument(flag, choices=typing.get_args(hint), help=doc)
    else:
        parser.add_argument(flag, type=hint, help=doc)


def parse(cls: type[A], presets: Mapping[str, Mapping[str, Any]], argv: Sequence[str] | None) -> A:
    """Build ``cls`` from the command line; exits 2 with one line on bad input."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    parser = argparse.ArgumentParser(description=(cls.__doc__ or "").strip().splitlines()[0])
    for f in dataclasses.fields(cls):
        if f.name not in ("preset", "stages"):  # stage sections come from --config only
            _add_flag(parser, f, hints[f.name], docs.get(f.name, ""))
    parser.add_argument("--preset", choices=sorted(presets), default="default", help=docs.get("preset"))
    parser.add_argument("--config", type=Path, help="JSON file of field values (between the preset and explicit flags)")
    ns = vars(parser.parse_args(argv))
    from_file = read_config(ns.pop("config"), cls, parser) if ns.get("config") else {}
    values = {**presets[ns["preset"]], **from_file, **{k: v for k, v in ns.items() if v is not None}}
    values = as_field_values(values)
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")


def as_field_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """JSON values as dataclass field values: lists become tuples (frozen Args hold tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def spec_of(spec_cls: type[A], args: object) -> A:
    """A small spec built from the same-named fields of a stage's Args (the one place that maps them)."""
    return spec_cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(spec_cls)})


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - {"stages"}


def read_config(path: Path, cls: type, parser: argparse.ArgumentParser) -> dict:
    """Field values from a JSON file, stage sections gathered under ``stages``.

    Unknown keys (``section.key`` inside a section) or unreadable JSON exit 2 naming the file and key."""
    try:
        values = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        parser.exit(2, f"error: {path}: unreadable config ({e})\n")
    if not isinstance(values, dict):
        parser.exit(2, f"error: {path}: config must be a JSON object\n")
    sections: dict[str, type] = getattr(cls, "SECTIONS", {})
    unknown = sorted(set(values) - _names(cls) - set(sections))
    for name, stage_cls in sections.items():
        section = values.get(name, {})
        if not isinstance(section, dict):
            parser.exit(2, f"error: {path}: section {name!r} must be a JSON object\n")
        unknown += sorted(f"{name}.{key}" for key in set(section) - _names(stage_cls))
    if unknown:
        parser.exit(2, f"error: {path}: unknown config keys {unknown}\n")
    stages = {name: values.pop(name) for name in sections if name in values}
    return {**values, "stages": stages} if stages else values


def preset_args(cls: type[A], presets: Mapping[str, Mapping[str, Any]], name: str, **overrides: Any) -> A:
    """``cls`` from a named preset plus overrides, as ``--preset name --flag ...`` would build it."""
    return cls(**{**presets[name], "preset": name, **overrides})


def run(main: Callable[[A], Any], cls: type[A], presets: Mapping[str, Mapping[str, Any]]) -> None:
    """Entry point for ``python -m experiments.X``: parse, run, one-line errors."""
    offline_mode()
    matplotlib.use("Agg")  # figures go to files; no window, whatever the machine's default backend
    args = parse(cls, presets, sys.argv[1:])
    try:
        main(args)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except FloatingPointError as e:  # diverged training: say where, keep the last snapshot
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


class StageClock:
    """Progress lines of a multi-stage study (``[band_study     12 s] diff every checkpoint``) and, given a ``log``,
    one JSON line per finished stage appended to it (``probes.layout.PROFILE``), with the tokens its model passes
    processed (``tally``) and their rate: a resumed study adds its own lines beside the first invocation's instead of
    replacing its time."""

    def __init__(self, study: str, log: Path | None = None) -> None:
        self.study, self.log = study, log
        self.start = self._mark = time.perf_counter()
        self.invocation = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self._stage: str | None = None
        self._tokens = tally.snapshot()

    @property
    def seconds(self) -> float:
        """Wall time since the study started (this invocation only)."""
        return time.perf_counter() - self.start

    def __call__(self, stage: str) -> None:
        self.finish()
        self._stage = stage
        print(f"[{self.study} {self.seconds:6.0f} s] {stage}", flush=True)

    def finish(self) -> None:
        """Close the running stage (its line goes to the log)."""
        now, tokens = time.perf_counter(), tally.snapshot()
        if self._stage is not None and self.log is not None:
            row = {
                "study": self.study,
                "invocation": self.invocation,
                "stage": self._stage,
                "seconds": round(now - self._mark, 3),
                "tokens": {k: n - self._tokens[k] for k, n in tokens.items()},
            }
            append_jsonl(self.log, [row])
        self._stage, self._mark, self._tokens = None, now, tokens
