"""A second task family: A* maze search with derivational traces (after Searchformer, Lehnert et al. 2024,
and Palod et al. 2025, "Performative Thinking?").

Grid. A maze of size n (odd, 3 <= n <= spec.max_size; n is the difficulty knob the harness calls k) is an
n x n grid of cells (x, y), 0 <= x, y < n, each free or a wall. Rooms are the cells with both coordinates even
and are always free; cells with both coordinates odd are always walls; a cell with exactly one odd coordinate
is the passage between the two rooms it separates, free iff carved.

Generation (``draw_maze``), all randomness from one ``np.random.Generator`` in this order:

1. Wilson's algorithm over the room lattice (a uniform spanning tree by loop-erased random walks). Rooms are
   visited in row-major order (by (y, x)); the first room is the initial tree; from each room not yet in the
   tree a walk steps to a neighbouring room drawn uniformly (``rng.integers``) among its in-grid room
   neighbours, listed up, right, down, left; the loop-erased walk joins the tree with its passages carved.
2. Loops: only when spec.loop_frac > 0, every still-closed passage, in row-major order, is opened with
   probability loop_frac (one ``rng.random()`` each). With loop_frac == 0 nothing is drawn, so those mazes
   are the pure spanning tree (rooms - 1 open passages, one path between any two rooms).
3. Start and goal: two distinct rooms, ``rng.choice(n_rooms, 2, replace=False)`` over the row-major room list.

``generate_mazes(seed, size, n, spec)`` seeds PCG64 with (seed, size, round(1000 * loop_frac)) and draws the
mazes one at a time, so it is a pure function of its arguments and its first m of n mazes equal
``generate_mazes(seed, size, m, spec)``. Pids read ``s{seed}-n{size}-l{round(1000 * loop_frac)}-{i}`` (loop
fractions that round to the same thousandth share a stream).

Search. A* with unit step cost and heuristic h = Manhattan distance to the goal (consistent, so a closed cell
is never reopened). The start is created first with g = 0. Each iteration pops the open cell with the
smallest (f, h, y, x): lowest f = g + h, ties broken by lowest h (closer to the goal), then row-major position.
It writes ``close`` for it and stops once the goal is closed (the goal's close is the last op); otherwise it
expands the free in-grid neighbours in the fixed order up (x, y-1), right (x+1, y), down (x, y+1), left
(x-1, y): a neighbour not closed, and either not open or reached with a strictly smaller g than its open
entry, gets ``create`` with its new g and h and the popped cell as parent. The plan follows parents back from
the goal, so it is a shortest path. The number of ops is the ground-truth difficulty of a maze.

Words. Numbers are the strings "0".."max_size**2" (coordinates, g values, h values all fit).

* prompt: ``<bos> size n (wall x y)* start x y goal x y =`` with the walls in row-major order;
* deliberate completion: ``<think> (kind x y g h)* </think> plan (x y)+ <eos>`` with one 5-word group per A*
  op (kind is ``create`` or ``close``) and the plan from start to goal inclusive;
* direct completion: ``plan (x y)+ <eos>``.

The first completion word (``<think>`` or ``plan``) is the mode decision, as in the arithmetic task.
The reward is 1 iff the completion is well formed and its plan is valid (starts at the start, ends at the
goal, each step moves to a free in-grid 4-neighbour) and optimal (as long as the shortest path); the trace
is not checked by the reward, only reported.

Reading (``parse_maze``, which never raises on words). Well formed means exactly one of the two shapes above:
<eos> last and nowhere else, exactly one </think> in a deliberate completion, every op 5 words, at least one
cell, and every number a number word (no leading zeros) of at most size**2. Anything else is
a format error: mode still reported, no answer, reward 0. A coordinate off the grid is well formed; it only
makes the plan invalid. Trace errors are counted against A*'s ops: skipped (true ops that a greedy in-order
match on the whole op never finds in the written trace), wrong (written ops unequal to the true op at the
same index, plus any beyond its end). A correct plan is a lucky success when the written trace is not
exactly A*'s, or, for a direct plan, on a grid larger than SHORTCUT_SIZE.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from experiments.harness.tasks.family import BOS, END_THINK, EOS, EQUALS, SPECIAL_TOKENS, THINK, Family, Mode, Target

SIZE, WALL, START, GOAL, CREATE, CLOSE, PLAN = "size", "wall", "start", "goal", "create", "close", "plan"

SHORTCUT_SIZE = 5
"""Largest grid side a direct plan really solves (the maze knob's shortcut range, as arithmetic's
SHORTCUT_K): measured on the ``maze`` preset's base model, greedy direct plans were right on 1.00 of
side-3 mazes, 0.64 at side 5 (both in pretraining) and 0 at side 7; beyond it a right direct plan is luck."""

Cell = tuple[int, int]
OpKind = Literal["create", "close"]


@dataclasses.dataclass(frozen=True)
class MazeSpec:
    """What defines the maze language: the largest grid its vocabulary covers and the loop density."""

    max_size: int = 9
    """Largest grid side the vocabulary covers; odd, >= 3."""
    loop_frac: float = 0.0
    """Probability that each passage the spanning tree left closed is opened, in [0, 1]; 0 gives pure trees."""

    def __post_init__(self) -> None:
        if self.max_size < 3 or self.max_size % 2 == 0:
            raise ValueError(f"max_size: must be odd and >= 3, got {self.max_size}")
        if not 0.0 <= self.loop_frac <= 1.0:
            raise ValueError(f"loop_frac: must lie in [0, 1], got {self.loop_frac}")

    @property
    def max_number(self) -> int:
        """max_size**2: above every coordinate, g (< number of free cells) and h (<= 2 (max_size - 1))."""
        return self.max_size * self.max_size

    @property
    def numbers(self) -> tuple[str, ...]:
        return tuple(str(i) for i in range(self.max_number + 1))

    @property
    def vocab(self) -> tuple[str, ...]:
        """Every word of the language; the order fixes token ids."""
        return (*SPECIAL_TOKENS, EQUALS, THINK, END_THINK, SIZE, WALL, START, GOAL, CREATE, CLOSE, PLAN, *self.numbers)


def _row_major(cell: Cell) -> tuple[int, int]:
    return cell[1], cell[0]


@dataclasses.dataclass(frozen=True)
class Maze:
    """One n x n maze with a start and a goal."""

    pid: str
    size: int
    """Grid side n: odd, >= 3."""
    walls: tuple[Cell, ...]
    """Wall cells (x, y), distinct, sorted row-major (by (y, x))."""
    start: Cell
    goal: Cell

    def __post_init__(self) -> None:
        if self.size < 3 or self.size % 2 == 0:
            raise ValueError(f"size: must be odd and >= 3, got {self.size}")
        in_grid = all(0 <= x < self.size and 0 <= y < self.size for x, y in self.walls)
        if not in_grid or list(self.walls) != sorted(set(self.walls), key=_row_major):
            raise ValueError(f"walls: must be distinct in-grid cells sorted row-major, got {self.walls}")
        for name in ("start", "goal"):
            if not self.free(getattr(self, name)):
                raise ValueError(f"{name}: {getattr(self, name)} is not a free cell")

    @functools.cached_property
    def _wall_set(self) -> frozenset[Cell]:
        return frozenset(self.walls)

    @functools.cached_property
    def search(self) -> Search:
        """A* on this maze, run once: the canonical trace, the plan and the difficulty all read it."""
        return astar(self)

    @property
    def difficulty(self) -> int:
        """The intrinsic difficulty: A*'s operation count on this maze."""
        return self.search.n_ops

    @property
    def key(self) -> str:
        """What the maze is, whatever its id: two mazes with one key are the same problem."""
        walls = ";".join(f"{x},{y}" for x, y in self.walls)
        return f"maze|{self.size}|{walls}|{self.start[0]},{self.start[1]}|{self.goal[0]},{self.goal[1]}"

    @property
    def k(self) -> int:
        """The generator's difficulty knob, as the rest of the harness names it: the grid side."""
        return self.size

    def free(self, cell: Cell) -> bool:
        """In the grid and not a wall."""
        x, y = cell
        return 0 <= x < self.size and 0 <= y < self.size and cell not in self._wall_set

    def neighbours(self, cell: Cell) -> list[Cell]:
        """Free 4-neighbours in the fixed expansion order up, right, down, left."""
        x, y = cell
        return [c for c in ((x, y - 1), (x + 1, y), (x, y + 1), (x - 1, y)) if self.free(c)]

    def as_record(self) -> dict:
        """JSON-ready fields."""
        return {
            "pid": self.pid,
            "k": self.size,
            "walls": [list(w) for w in self.walls],
            "start": list(self.start),
            "goal": list(self.goal),
        }

    # A maze answers for its own words (``experiments.harness.tasks.family.Problem``).
    def prompt_words(self) -> list[str]:
        return prompt_words(self)

    def completion_words(self, mode: Mode) -> list[str]:
        """The canonical (correct) completion in ``mode``."""
        return completion_words(self, mode)

    def trace_prefix(self, j: int) -> list[str]:
        """``<think>`` and A*'s first j ops, five words each (j = 0: nothing)."""
        return completion_words(self, "deliberate")[: 1 + 5 * j] if j else []

    def parse(self, words: Sequence[str]) -> MazeParsed:
        return parse_maze(self, words)

    def roles(self, completion: Sequence[str]) -> tuple[list[str], list[int]]:
        """Role and trace step of every prompt word, then of every completion word."""
        return word_roles(self, completion)

    def targets(self, shortcut_k: int) -> list[Target]:
        """shortcut: each coordinate of the direct plan after the start, among the grid's coordinates,
        where a direct plan is trusted (side <= shortcut_k); mode: ``<think>`` against ``plan`` at the
        decision; computation: the g and h of every A* op among the numbers up to size**2; deliberation:
        every other trace and plan word (op kinds and cells, ``</think>``, ``plan``, the plan's cells)."""
        coords = tuple(str(v) for v in range(self.size))
        numbers = tuple(str(v) for v in range(self.size * self.size + 1))
        direct = completion_words(self, "direct")
        out = (
            [Target("shortcut", "direct", c, w, coords) for c, w in enumerate(direct) if 3 <= c < len(direct) - 1]
            if self.size <= shortcut_k
            else []
        )
        out.append(Target("mode", "direct", 0, THINK, (PLAN,)))
        words = completion_words(self, "deliberate")
        n_trace = 5 * self.search.n_ops
        for c, w in enumerate(words[1:], start=1):  # word 0 is the mode choice
            if w != EOS:
                computed = c <= n_trace and (c - 1) % 5 >= 3  # each op is kind x y g h
                out.append(
                    Target(
                        "computation" if computed else "deliberation", "deliberate", c, w, numbers if computed else None
                    )
                )
        return out

    @classmethod
    def from_record(cls, rec: dict) -> Maze:
        walls = tuple((int(x), int(y)) for x, y in rec["walls"])
        start, goal = (tuple(int(v) for v in rec[name]) for name in ("start", "goal"))
        return cls(rec["pid"], int(rec["k"]), walls, start, goal)


def _check_size(size: int, spec: MazeSpec) -> None:
    if size < 3 or size % 2 == 0 or size > spec.max_size:
        raise ValueError(f"size: need odd 3 <= size <= max_size={spec.max_size}, got {size}")


def _room_neighbours(room: Cell, size: int) -> list[Cell]:
    x, y = room
    return [(u, v) for u, v in ((x, y - 2), (x + 2, y), (x, y + 2), (x - 2, y)) if 0 <= u < size and 0 <= v < size]


def draw_maze(rng: np.random.Generator, size: int, spec: MazeSpec, pid: str = "") -> Maze:
    """One random maze of side ``size`` drawn from ``rng`` (the steps and draw order are in the module doc)."""
    _check_size(size, spec)
    rooms = [(x, y) for y in range(0, size, 2) for x in range(0, size, 2)]
    in_tree, carved = {rooms[0]}, set()
    for room in rooms[1:]:
        # Overwriting a room's exit on every revisit erases the loops: following the last exits from the
        # walk's origin traces the loop-erased walk.
        exit_to: dict[Cell, Cell] = {}
        cur = room
        while cur not in in_tree:
            options = _room_neighbours(cur, size)
            exit_to[cur] = options[int(rng.integers(len(options)))]
            cur = exit_to[cur]
        cur = room
        while cur not in in_tree:
            nxt = exit_to[cur]
            in_tree.add(cur)
            carved.add(((cur[0] + nxt[0]) // 2, (cur[1] + nxt[1]) // 2))
            cur = nxt
    if spec.loop_frac > 0:
        passages = [(x, y) for y in range(size) for x in range(size) if (x + y) % 2]
        carved |= {c for c in passages if c not in carved and rng.random() < spec.loop_frac}
    cells = [(x, y) for y in range(size) for x in range(size)]
    walls = tuple((x, y) for x, y in cells if (x % 2 and y % 2) or ((x + y) % 2 and (x, y) not in carved))
    i, j = rng.choice(len(rooms), size=2, replace=False)
    return Maze(pid=pid, size=size, walls=walls, start=rooms[i], goal=rooms[j])


def generate_mazes(seed: int, size: int, n: int, spec: MazeSpec) -> list[Maze]:
    """n mazes of side ``size``; a pure function of (seed, size, n, spec), prefix-stable in n."""
    _check_size(size, spec)
    if n < 0:
        raise ValueError(f"n: need n >= 0, got {n}")
    loops = round(spec.loop_frac * 1000)
    rng = np.random.Generator(np.random.PCG64([seed, size, loops]))
    return [draw_maze(rng, size, spec, pid=f"s{seed}-n{size}-l{loops}-{i}") for i in range(n)]


@dataclasses.dataclass(frozen=True)
class Op:
    """One line of the A* trace."""

    kind: OpKind
    """'create': a cell enters the open set (or its open entry gets a smaller g); 'close': it is popped."""
    x: int
    y: int
    g: int
    """Cost of the best known path from the start."""
    h: int
    """Manhattan distance to the goal."""

    @property
    def words(self) -> list[str]:
        return [self.kind, str(self.x), str(self.y), str(self.g), str(self.h)]


@dataclasses.dataclass(frozen=True)
class Search:
    """What A* did on a maze."""

    ops: tuple[Op, ...]
    """Creates and closes in execution order; the last is the goal's close."""
    path: tuple[Cell, ...]
    """A shortest path, start to goal inclusive."""

    @property
    def n_ops(self) -> int:
        """The ground-truth difficulty of the maze."""
        return len(self.ops)


def astar(maze: Maze) -> Search:
    """A* from start to goal under the module's conventions; raises ValueError if the goal is unreachable."""
    gx, gy = maze.goal

    def h(cell: Cell) -> int:
        return abs(cell[0] - gx) + abs(cell[1] - gy)

    g: dict[Cell, int] = {maze.start: 0}
    parent: dict[Cell, Cell] = {}
    closed: set[Cell] = set()
    ops = [Op(CREATE, *maze.start, 0, h(maze.start))]
    heap = [(h(maze.start), h(maze.start), maze.start[1], maze.start[0])]
    while heap:
        _, hc, y, x = heapq.heappop(heap)
        cell = (x, y)
        # A cell re-created with a smaller g has a smaller f, so its stale entry pops after it was closed.
        if cell in closed:
            continue
        closed.add(cell)
        ops.append(Op(CLOSE, x, y, g[cell], hc))
        if cell == maze.goal:
            path = [cell]
            while path[-1] in parent:
                path.append(parent[path[-1]])
            return Search(tuple(ops), tuple(reversed(path)))
        for nb in maze.neighbours(cell):
            ng = g[cell] + 1
            if nb in closed or ng >= g.get(nb, ng + 1):
                continue
            g[nb], parent[nb] = ng, cell
            ops.append(Op(CREATE, *nb, ng, h(nb)))
            heapq.heappush(heap, (ng + h(nb), h(nb), nb[1], nb[0]))
    raise ValueError(f"{maze.pid or 'maze'}: goal {maze.goal} is unreachable from start {maze.start}")


def prompt_words(maze: Maze) -> list[str]:
    words = [BOS, SIZE, str(maze.size)]
    for x, y in maze.walls:
        words += [WALL, str(x), str(y)]
    return [*words, START, *map(str, maze.start), GOAL, *map(str, maze.goal), EQUALS]


def completion_words(maze: Maze, mode: Mode) -> list[str]:
    """The canonical (correct) completion in the given mode."""
    search = maze.search
    plan = [PLAN, *(str(v) for cell in search.path for v in cell), EOS]
    if mode == "direct":
        return plan
    return [THINK, *(w for op in search.ops for w in op.words), END_THINK, *plan]


@dataclasses.dataclass(frozen=True)
class MazeParsed:
    """A completion read against its maze; every field is defined for any input."""

    mode: Mode | None
    """'deliberate' if it opened with <think>, 'direct' if with 'plan', else None."""
    answer: tuple[Cell, ...] | None
    """The written plan as cells (coordinates may lie off the grid), None when the completion is malformed."""
    correct: bool
    """Well formed, plan valid and optimal (as long as the shortest path): the reward."""
    format_error: bool
    n_skipped_steps: int
    """True A* ops missing from the written trace (greedy in-order match on the whole op; a written op with no
    match ahead is passed over). 0 for direct completions and format errors."""
    n_wrong_steps: int
    """Written ops unequal to the true op at the same index, plus written ops beyond the true trace's end.
    0 for direct completions and format errors."""
    copied_answer: bool
    """A wrong plan that is just [start, goal]: copying the prompt, not searching."""
    length: int
    """Completion length in words, <eos> included."""
    lucky_success: bool
    """Correct plan without a verified search: a deliberate trace that is not exactly A*'s, or a direct plan on
    a grid larger than SHORTCUT_SIZE."""
    plan_valid: bool
    """Starts at the start, ends at the goal, and each step moves to a free in-grid 4-neighbour."""
    trace_valid: bool
    """Deliberate only: the written ops equal A*'s ops exactly. False for direct completions."""
    n_trace_ops: int
    """Written ops (0 for direct completions and format errors)."""

    @property
    def reward(self) -> float:
        return float(self.correct)


def _number(word: str, max_number: int) -> int | None:
    """The value of a vocabulary number word; None for anything else ('07', '-1', '²', too large)."""
    # The length bound keeps int() off huge digit strings, which it refuses (str-to-int digit limit).
    if len(word) > len(str(max_number)) or not (word.isascii() and word.isdigit()) or word != str(int(word)):
        return None
    return int(word) if int(word) <= max_number else None


def _parse_ops(body: Sequence[str], max_number: int) -> tuple[Op, ...] | None:
    """``(kind x y g h)*`` -> ops, or None when the body is not of that shape."""
    if len(body) % 5:
        return None
    ops = []
    for i in range(0, len(body), 5):
        kind, *rest = body[i : i + 5]
        values = [_number(w, max_number) for w in rest]
        if kind not in (CREATE, CLOSE) or None in values:
            return None
        ops.append(Op(kind, *values))
    return tuple(ops)


def _parse_plan(coords: Sequence[str], max_number: int) -> tuple[Cell, ...] | None:
    """``(x y)+`` -> cells, or None when the coordinates are not of that shape."""
    values = [_number(w, max_number) for w in coords]
    if not values or len(values) % 2 or None in values:
        return None
    return tuple(zip(values[::2], values[1::2]))


def _plan_valid(maze: Maze, plan: Sequence[Cell]) -> bool:
    steps_ok = all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in zip(plan, plan[1:]))
    return plan[0] == maze.start and plan[-1] == maze.goal and all(map(maze.free, plan)) and steps_ok


def _count_skipped(true_ops: Sequence[Op], written: Sequence[Op]) -> int:
    matched, i = 0, 0
    for op in written:
        j = next((j for j in range(i, len(true_ops)) if true_ops[j] == op), None)
        if j is not None:
            matched, i = matched + 1, j + 1
    return len(true_ops) - matched


def parse_maze(maze: Maze, words: Sequence[str]) -> MazeParsed:
    """Read a completion (words after the prompt, up to and including <eos>) against its maze.

    Never raises: anything that is not one of the two canonical shapes, or holds a number above size**2
    (no coordinate, g or h of this maze reaches it; as the arithmetic task bounds numbers by p), is a
    format error (its mode is still reported) in which, as in arithmetic, every A* op counts as skipped.
    """
    words = list(words)
    length = len(words)
    top = maze.size * maze.size
    first = words[0] if words else None
    mode: Mode | None = "deliberate" if first == THINK else "direct" if first == PLAN else None
    error = MazeParsed(mode, None, False, True, maze.search.n_ops, 0, False, length, False, False, False, 0)
    if mode is None or words[-1] != EOS or words.count(EOS) != 1:
        return error
    if mode == "direct":
        ops, plan = (), _parse_plan(words[1:-1], top)
    else:
        if words.count(END_THINK) != 1:
            return error
        end = words.index(END_THINK)
        ops = _parse_ops(words[1:end], top)
        plan = _parse_plan(words[end + 2 : -1], top) if words[end + 1] == PLAN else None
    if ops is None or plan is None:
        return error
    search = maze.search
    plan_valid = _plan_valid(maze, plan)
    correct = plan_valid and len(plan) == len(search.path)
    if mode == "deliberate":
        skipped = _count_skipped(search.ops, ops)
        wrong = sum(w != t for w, t in zip(ops, search.ops)) + max(0, len(ops) - search.n_ops)
        trace_valid = ops == search.ops
        lucky = correct and not trace_valid
    else:
        skipped, wrong, trace_valid = 0, 0, False
        lucky = correct and maze.size > SHORTCUT_SIZE
    copied = not correct and plan == (maze.start, maze.goal)
    return MazeParsed(
        mode, plan, correct, False, skipped, wrong, copied, length, lucky, plan_valid, trace_valid, len(ops)
    )


def word_roles(maze: Maze, completion: Sequence[str]) -> tuple[list[str], list[int]]:
    """Role (``probes.activations.ROLES``) and trace step (-1: none) of every prompt word, then of every
    completion word. Prompt numbers are operands and its keywords operators; in a trace, the op kinds are
    operators and their numbers intermediates, with step = the op's index from 1; plan coordinates are the
    answer; markers and unknown words are special. Malformed completions get roles word by word."""
    prompt = prompt_words(maze)
    roles = ["operand" if w.isdigit() else "special" if w in (BOS, EQUALS) else "operator" for w in prompt]
    steps = [-1] * len(prompt)
    in_trace, op = False, 0
    for w in completion:
        role, step = "special", -1
        if w == THINK:
            in_trace = True
        elif w in (END_THINK, PLAN):
            in_trace = False
            role = "operator" if w == PLAN else role
        elif w in (CREATE, CLOSE):
            op += 1
            role, step = "operator", op
        elif w.isdigit():
            role, step = ("intermediate", op) if in_trace else ("answer", -1)
        roles.append(role)
        steps.append(step)
    return roles, steps


SPANNING_TREES = (1, 1, 4, 192, 100_352, 557_568_000)
"""Spanning trees of the m x m grid graph (OEIS A007341), m = 0..5: the loop-free mazes with m x m rooms."""


@dataclasses.dataclass(frozen=True)
class Mazes:
    """A* maze search with derivational traces; k is the grid side (odd)."""

    spec: MazeSpec = MazeSpec()
    name: str = "maze"
    shortcut_k: int = SHORTCUT_SIZE
    knob_name: str = "grid side"
    ability: str = "planning"
    variant: tuple[str, str] | None = ("loop_frac", "loops")

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

    def draw(self, rng: np.random.Generator, k: int, pid: str = "") -> Maze:
        return draw_maze(rng, k, self.spec, pid)

    def problems(self, seed: int, k: int, n: int) -> list[Maze]:
        return generate_mazes(seed, k, n, self.spec)

    def from_record(self, rec: Mapping[str, Any]) -> Maze:
        return Maze.from_record(dict(rec))


def _speaks(vocab: Collection[str]) -> Mazes | None:
    """The maze language: it has walls; its largest number is max_size squared."""
    if WALL not in vocab:
        return None
    return Mazes(MazeSpec(max_size=math.isqrt(max(int(w) for w in vocab if w.isdigit()))))


FAMILY = Family(
    "maze",
    make=lambda f: Mazes(MazeSpec(f.get("max_size", 9), f.get("loop_frac", 0.0))),
    speaks=_speaks,
    presets={
        # Pretraining on grid sides 3 and 5 drawn uniformly, evaluation on larger grids (out of distribution).
        # 600 steps (~5 min on 2 cores) reach greedy plan accuracy 1.00 at side 3, 0.34 at side 5, 0 at side 7 (chosen
        # for time and for both modes and all three bands existing; 1500 steps, 12-23 min, reach 1.00 / 0.66 / 0).
        # smoke: side 3 only, side 5 beyond; ~25 s, greedy plan accuracy 0.75 at side 3.
        "pretrain": {
            "smoke": dict(
                task="maze",
                max_size=5,
                k_train_max=3,
                k_eval_max=5,
                k_weighting="uniform",
                max_len=512,
                steps=300,
                batch_size=32,
                lr=3e-3,
                warmup=20,
                d_model=64,
                n_layers=2,
                d_mlp=128,
                eval_per_k=8,
                checkpoint_every=100,
            ),
            "default": dict(
                task="maze",
                max_size=7,
                k_train_max=5,
                k_eval_max=7,
                k_weighting="uniform",
                max_len=512,
                steps=600,
                batch_size=64,
                eval_per_k=50,
            ),
            "gpu": dict(
                task="maze",
                max_size=11,
                k_train_max=7,
                k_eval_max=11,
                k_weighting="uniform",
                max_len=1024,
                steps=8000,
                batch_size=256,
                d_model=256,
                n_layers=4,
                d_mlp=1024,
                n_heads=8,
                eval_per_k=200,
                device="cuda",
                precision="bf16",
                batch_workers=4,
            ),
        },
        # Three grid sides (3, 5, 7) where arithmetic has ten chain lengths, and a completion ~5x longer: fewer
        # candidates and samples keep the stage's time near arithmetic's (chosen for time).
        "bands": {
            "smoke": dict(candidates_per_k=12, eval_per_k=6, pool_size=6, n_samples=8),
            "default": dict(candidates_per_k=64, eval_per_k=32, n_samples=16, pool_size=32),
            "gpu": dict(candidates_per_k=512, eval_per_k=256, n_samples=16, pool_size=256, device="cuda"),
        },
        # Completions ~5x longer: half the prompts per update and half the eval samples (chosen for time).
        "grpo": {
            "smoke": dict(steps=4, prompts_per_step=4, group_size=4, eval_every=2, checkpoint_every=2, eval_samples=2),
            "default": dict(prompts_per_step=8, eval_samples=4),
            "gpu": ("gpu", {}),
        },
        # Grid sides 3, 5, 7 (k_min 1 lies below the smallest side); sequences ~5x longer, so fewer problems.
        "train_sae": {
            "smoke": ("smoke", dict(k_max=5, per_k=6)),
            "default": dict(k_max=7, per_k=100, n_samples=1),
            "gpu": ("gpu", dict(k_max=11, per_k=500, n_samples=4)),
        },
        "export": {
            "smoke": dict(steps=4, prompts_per_step=4, group_size=4, checkpoint_every=2),
            "default": dict(prompts_per_step=8),
            "gpu": ("gpu", {}),
        },
    },
)
