"""The task interface: what the stages need from a task family, and the families there are.

A task family is one module (``task`` for chained modular arithmetic, ``maze`` for A* maze
search); a ``Task`` wraps it behind one set of names so that a stage never names a family:

* problems from a seed and a difficulty knob ``k`` (a pure function of (seed, k, n, params));
* prompt and completion words for a deliberate mode (a trace, then the answer) and a direct
  mode (the answer alone), the mode decided by the first completion word;
* a parser that never raises and reports the same behaviour flags for every family (format
  error, skipped and wrong trace steps, answer copied from the prompt, length, lucky success);
* the vocabulary, and each token's role (``probes.activations.ROLES``) and trace step for
  activation caches and feature labels;
* problem records for run directories, and the parameters a run's ``config.json`` records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from experiments.harness import maze
from experiments.harness import task as arith
from experiments.harness.probe_sets import completion_roles, prompt_roles
from experiments.harness.task import Mode


class Outcome(Protocol):
    """A parsed completion: the flags every family reports (``task.Parsed`` is one)."""

    mode: Mode | None
    correct: bool
    format_error: bool
    n_skipped_steps: int
    n_wrong_steps: int
    copied_answer: bool
    length: int
    lucky_success: bool

    @property
    def reward(self) -> float: ...


class Task(Protocol):
    """One task family with its parameters."""

    name: str
    """The family's name in ``config.json`` and on the command line."""

    @property
    def params(self) -> dict[str, Any]:
        """The parameters that define the family's language and generator (recorded with the run)."""
        ...

    @property
    def vocab(self) -> tuple[str, ...]:
        """Every word, in token-id order."""
        ...

    def draw(self, rng: np.random.Generator, k: int, pid: str = "") -> Any:
        """One problem at difficulty knob ``k`` from ``rng``."""
        ...

    def problems(self, seed: int, k: int, n: int) -> list[Any]:
        """n problems at knob k, a pure function of (seed, k, n, params); the first m equal ``problems(seed, k, m)``."""
        ...

    def prompt_words(self, problem: Any) -> list[str]: ...

    def completion_words(self, problem: Any, mode: Mode) -> list[str]:
        """The canonical (correct) completion in ``mode``."""
        ...

    def parse(self, problem: Any, words: Sequence[str]) -> Outcome:
        """Read a completion (the words after the prompt, ``<eos>`` included); never raises."""
        ...

    def roles(self, problem: Any, completion: Sequence[str]) -> tuple[list[str], list[int]]:
        """Role and trace step (-1: none) of every prompt word, then of every completion word."""
        ...

    def record(self, problem: Any) -> dict:
        """JSON-ready fields of a problem."""
        ...

    def from_record(self, rec: Mapping[str, Any]) -> Any: ...


@dataclasses.dataclass(frozen=True)
class Arithmetic:
    """Chained modular arithmetic over Z_p (``experiments.harness.task``)."""

    spec: arith.TaskSpec = arith.TaskSpec()
    name: str = "arith"

    @property
    def params(self) -> dict[str, Any]:
        return {"p": self.spec.p, "ops": list(self.spec.ops)}

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.spec.vocab

    def draw(self, rng: np.random.Generator, k: int, pid: str = "") -> arith.Problem:
        return arith.draw_problem(rng, k, self.spec, pid)

    def problems(self, seed: int, k: int, n: int) -> list[arith.Problem]:
        return arith.generate_problems(seed, k, n, self.spec)

    def prompt_words(self, problem: arith.Problem) -> list[str]:
        return arith.prompt_words(problem)

    def completion_words(self, problem: arith.Problem, mode: Mode) -> list[str]:
        return arith.completion_words(problem, mode)

    def parse(self, problem: arith.Problem, words: Sequence[str]) -> arith.Parsed:
        return arith.parse_completion(problem, words)

    def roles(self, problem: arith.Problem, completion: Sequence[str]) -> tuple[list[str], list[int]]:
        (pr, ps), (cr, cs) = prompt_roles(problem), completion_roles(completion)
        return pr + cr, ps + cs

    def record(self, problem: arith.Problem) -> dict:
        return problem.as_record()

    def from_record(self, rec: Mapping[str, Any]) -> arith.Problem:
        return arith.Problem.from_record(dict(rec), self.spec.p)


@dataclasses.dataclass(frozen=True)
class Mazes:
    """A* maze search with derivational traces (``experiments.harness.maze``); k is the grid side (odd)."""

    spec: maze.MazeSpec = maze.MazeSpec()
    name: str = "maze"

    @property
    def params(self) -> dict[str, Any]:
        return {"max_size": self.spec.max_size, "loop_frac": self.spec.loop_frac}

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.spec.vocab

    def draw(self, rng: np.random.Generator, k: int, pid: str = "") -> maze.Maze:
        return maze.draw_maze(rng, k, self.spec, pid)

    def problems(self, seed: int, k: int, n: int) -> list[maze.Maze]:
        return maze.generate_mazes(seed, k, n, self.spec)

    def prompt_words(self, problem: maze.Maze) -> list[str]:
        return maze.prompt_words(problem)

    def completion_words(self, problem: maze.Maze, mode: Mode) -> list[str]:
        return maze.completion_words(problem, mode)

    def parse(self, problem: maze.Maze, words: Sequence[str]) -> maze.MazeParsed:
        return maze.parse_maze(problem, words, self.spec)

    def roles(self, problem: maze.Maze, completion: Sequence[str]) -> tuple[list[str], list[int]]:
        return maze.word_roles(problem, completion)

    def record(self, problem: maze.Maze) -> dict:
        return problem.as_record()

    def from_record(self, rec: Mapping[str, Any]) -> maze.Maze:
        return maze.Maze.from_record(dict(rec))
