"""The task interface: what the stages need from a task family, and the families there are.

A task family is one module (``task`` for chained modular arithmetic, ``maze`` for A* maze
search). Its problems answer for their own words (``Problem``), so code that handles given
problems (rollouts, probe sets, read-outs) never names a family; a ``Task`` is what makes
problems, and what a run records:

* problems from a seed and a difficulty knob ``k`` (a pure function of (seed, k, n, params)),
  and the knob values the family has;
* prompt and completion words for a deliberate mode (a trace, then the answer) and a direct
  mode (the answer alone), the mode decided by the first completion word;
* a parser that never raises and reports the same behaviour flags for every family (format
  error, skipped and wrong trace steps, answer copied from the prompt, length, lucky success);
* the vocabulary, and each token's role (``probes.activations.ROLES``) and trace step for
  activation caches and feature labels;
* problem records for run directories, and the parameters a run's ``config.json`` records
  (its ``task`` section: the family's name, then its own fields; ``run_task`` reads it back).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from experiments.harness import hedging, maze
from experiments.harness import task as arith
from experiments.harness.hedging import Hedged
from experiments.harness.task import Mode, Target
from probes.behaviour import ParsedLike
from probes.layout import RunDirError, RunLayout, read_json

TASKS = ("arith", "maze")
"""Family names, as ``--task`` and ``config.json`` spell them."""


class Outcome(ParsedLike, Protocol):
    """A parsed completion (``task.Parsed``, ``maze.MazeParsed``): the behaviour flags every family reports, and its reward."""

    @property
    def reward(self) -> float: ...


class Problem(Protocol):
    """One problem of some family (``task.Problem``, ``maze.Maze``)."""

    pid: str

    @property
    def k(self) -> int:
        """The generator's difficulty knob."""
        ...

    @property
    def key(self) -> str:
        """What the problem is, whatever its id: two problems with one key are the same problem."""
        ...

    @property
    def difficulty(self) -> int:
        """The intrinsic difficulty: the operations a correct trace performs (chain length, A* op count)."""
        ...

    def prompt_words(self) -> list[str]: ...

    def completion_words(self, mode: Mode) -> list[str]:
        """The canonical (correct) completion in ``mode``."""
        ...

    def parse(self, words: Sequence[str]) -> Outcome:
        """Read a completion (the words after the prompt, ``<eos>`` included); never raises."""
        ...

    def roles(self, completion: Sequence[str]) -> tuple[list[str], list[int]]:
        """Role and trace step (-1: none) of every prompt word, then of every completion word."""
        ...

    def targets(self, shortcut_k: int) -> list[Target]:
        """Read-out targets on the canonical completions (shortcut ones only where k <= shortcut_k)."""
        ...

    def as_record(self) -> dict:
        """JSON-ready fields."""
        ...


class Task(Protocol):
    """One task family with its parameters: what makes its problems."""

    name: str

    @property
    def params(self) -> dict[str, Any]:
        """The family's fields as a run records them (``task`` and its parameters)."""
        ...

    @property
    def vocab(self) -> tuple[str, ...]:
        """Every word, in token-id order."""
        ...

    @property
    def shortcut_k(self) -> int:
        """Largest knob at which a direct answer is expected to really solve problems (beyond it, luck)."""
        ...

    @property
    def chance(self) -> float:
        """Success rate of a blind guess."""
        ...

    @property
    def stream_key(self) -> tuple[int, ...]:
        """Integers that seed problem streams beside (seed, k): problems of another language differ."""
        ...

    def knobs(self, k_max: int, k_min: int = 1) -> tuple[int, ...]:
        """The family's knob values in [k_min, k_max]."""
        ...

    def n_distinct(self, k: int) -> int:
        """How many distinct problems there are at knob k (a lower bound where counting is hard)."""
        ...

    def draw(self, rng: np.random.Generator, k: int, pid: str = "") -> Problem:
        """One problem at knob ``k`` from ``rng``."""
        ...

    def problems(self, seed: int, k: int, n: int) -> list[Problem]:
        """n problems at knob k, a pure function of (seed, k, n, params); the first m equal ``problems(seed, k, m)``."""
        ...

    def from_record(self, rec: Mapping[str, Any]) -> Problem: ...


@dataclasses.dataclass(frozen=True)
class Arithmetic:
    """Chained modular arithmetic over Z_p (``experiments.harness.task``); k is the chain length."""

    spec: arith.TaskSpec = arith.TaskSpec()
    name: str = "arith"
    shortcut_k: int = arith.SHORTCUT_K

    @property
    def params(self) -> dict[str, Any]:
        return {"task": self.name, "p": self.spec.p, "ops": list(self.spec.ops)}

    @property
    def chance(self) -> float:
        return 1 / self.spec.p

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.spec.vocab

    @property
    def stream_key(self) -> tuple[int, ...]:
        return (self.spec.p,)

    def knobs(self, k_max: int, k_min: int = 1) -> tuple[int, ...]:
        return tuple(range(max(k_min, 1), k_max + 1))

    def n_distinct(self, k: int) -> int:
        return self.spec.p ** (k + 1) * len(self.spec.ops) ** k

    def draw(self, rng: np.random.Generator, k: int, pid: str = "") -> arith.Problem:
        return arith.draw_problem(rng, k, self.spec, pid)

    def problems(self, seed: int, k: int, n: int) -> list[arith.Problem]:
        return arith.generate_problems(seed, k, n, self.spec)

    def from_record(self, rec: Mapping[str, Any]) -> arith.Problem:
        return arith.Problem.from_record(dict(rec), self.spec.p)


SPANNING_TREES = (1, 1, 4, 192, 100_352, 557_568_000)
"""Spanning trees of the m x m grid graph (OEIS A007341), m = 0..5: the loop-free mazes with m x m rooms."""


@dataclasses.dataclass(frozen=True)
class Mazes:
    """A* maze search with derivational traces (``experiments.harness.maze``); k is the grid side (odd)."""

    spec: maze.MazeSpec = maze.MazeSpec()
    name: str = "maze"
    shortcut_k: int = maze.SHORTCUT_SIZE

    @property
    def params(self) -> dict[str, Any]:
        return {"task": self.name, "max_size": self.spec.max_size, "loop_frac": self.spec.loop_frac}

    @property
    def chance(self) -> float:
        return 0.0  # a guessed plan is a valid shortest path with negligible probability

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.spec.vocab

    @property
    def stream_key(self) -> tuple[int, ...]:
        return (self.spec.max_size, round(1000 * self.spec.loop_frac))

    def knobs(self, k_max: int, k_min: int = 1) -> tuple[int, ...]:
        return tuple(k for k in range(max(k_min, 3), min(k_max, self.spec.max_size) + 1) if k % 2)

    def n_distinct(self, k: int) -> int:
        rooms_side = (k + 1) // 2
        trees = SPANNING_TREES[rooms_side] if rooms_side < len(SPANNING_TREES) else SPANNING_TREES[-1]
        return trees * rooms_side**2 * (rooms_side**2 - 1)  # loops only add mazes

    def draw(self, rng: np.random.Generator, k: int, pid: str = "") -> maze.Maze:
        return maze.draw_maze(rng, k, self.spec, pid)

    def problems(self, seed: int, k: int, n: int) -> list[maze.Maze]:
        return maze.generate_mazes(seed, k, n, self.spec)

    def from_record(self, rec: Mapping[str, Any]) -> maze.Maze:
        return maze.Maze.from_record(dict(rec))


def hedged(family: Task, confidence: bool, abstain: bool) -> Task:
    """The family, hedged where its completions state a confidence or may abstain."""
    return Hedged(family, confidence, abstain) if confidence or abstain else family


def stage_preset(task: str, preset: str) -> str:
    """A stage's preset for a family's study: arithmetic's are the plain names (smoke, default, gpu); another
    family's carry its name (maze-smoke, maze, maze-gpu)."""
    if task == "arith":
        return preset
    return task if preset == "default" else f"{task}-{preset}"


def task_of(fields: Mapping[str, Any]) -> Task:
    """The task a run's pretraining fields (or its config's task section) define: ``task`` (default arith) and
    that family's parameters, hedged (``experiments.harness.hedging``) where it states confidences or abstains."""
    name = fields.get("task", "arith")
    if name == "arith":
        family: Task = Arithmetic(arith.TaskSpec(fields.get("p", 11), tuple(fields.get("ops", arith.ALL_OPS))))
    elif name == "maze":
        family = Mazes(maze.MazeSpec(fields.get("max_size", 9), fields.get("loop_frac", 0.0)))
    else:
        raise ValueError(f"task: must be one of {', '.join(TASKS)}, got {name!r}")
    return hedged(family, bool(fields.get("confidence")), bool(fields.get("abstain", fields.get("abstain_frac", 0) > 0)))


def task_of_vocab(vocab: Collection[str]) -> Task:
    """The language a checkpoint speaks, read from its vocabulary (a family's generator knobs, such as the
    maze loop fraction, at their defaults: a run's own task comes from its config with ``task_of``)."""
    numbers = [int(w) for w in vocab if w.isdigit()]
    if maze.WALL in vocab:
        family: Task = Mazes(maze.MazeSpec(max_size=math.isqrt(max(numbers))))
    else:
        family = Arithmetic(arith.TaskSpec(len(numbers), tuple(op for op in arith.ALL_OPS if op in vocab)))
    return hedged(family, hedging.CONF in vocab, hedging.ABSTAIN in vocab)


def run_task(run: Path, vocab: Collection[str] = ()) -> Task:
    """The task of a run directory: its config.json's ``task`` section (written by pretraining), else the
    pretraining fields of a run made before that section existed, else (a directory holding a bring-your-own
    checkpoint's reads) the language ``vocab`` names."""
    path = RunLayout(run).config
    config = read_json(path) if path.exists() else {}
    if "task" in config:
        return task_of(config["task"])
    if "pretrain" in config.get("stages", {}):
        return task_of(config["stages"]["pretrain"])
    if not vocab:
        raise ValueError(f"{run}: no task recorded in {path.name} and no vocabulary to read one from")
    return task_of_vocab(vocab)


HEDGING_FLAGS = {"confidence": "--confidence", "abstain": "--abstain-frac"}
"""The pretraining flag that gives a run each hedging word."""


def hedged_task(run: Path, needs: str, user: str) -> Task:
    """The task of a run whose bands are measured and whose completions can ``needs`` (confidence or abstain)
    (``experiments.harness.hedging``); a one-line RunDirError naming the missing step otherwise."""
    layout = RunLayout(run)
    if not layout.band_table.exists():
        raise RunDirError(f"{layout.band_table}: missing; run experiments.pretrain {HEDGING_FLAGS[needs]} ..., then experiments.bands")
    task = run_task(run)
    if not getattr(task, needs, False):
        raise RunDirError(f"{run}: pretrained without {HEDGING_FLAGS[needs]}, which {user} needs")
    return task


def task_of_table(table: Mapping[str, Any]) -> Task:
    """The task whose problems a band table (``bands/table.json``) records; tables made before the task
    interface name only the arithmetic modulus, which is all that reading their records needs."""
    return task_of(table["task"]) if "task" in table else Arithmetic(arith.TaskSpec(table["p"]))
