import json
import random
from collections import Counter, deque

import numpy as np
import pytest

from experiments.harness.tasks.family import BOS, END_THINK, EOS, EQUALS, THINK
from experiments.harness.tasks.maze import (
    SHORTCUT_SIZE,
    Maze,
    MazeSpec,
    Op,
    astar,
    completion_words,
    draw_maze,
    generate_mazes,
    parse_maze,
    prompt_words,
)

SPEC = MazeSpec()
LOOPY = MazeSpec(loop_frac=0.3)


def _draw(pid: str, *rows: str) -> Maze:
    """A hand-made maze from a picture: '#' wall, '.' free, 'S' start, 'G' goal; rows are y, columns x."""
    cells = {(x, y): ch for y, row in enumerate(rows) for x, ch in enumerate(row.split())}
    walls = tuple(sorted((c for c, ch in cells.items() if ch == "#"), key=lambda c: (c[1], c[0])))
    start, goal = (next(c for c, ch in cells.items() if ch == mark) for mark in "SG")
    return Maze(pid, len(rows), walls, start, goal)


# Every passage open (a loop): two shortest paths from (0,0) to (2,2).
OPEN_3 = _draw(
    "open3",
    "S . .",
    ". # .",
    ". . G",
)
# A spanning tree (comb): a dead end at (4,2) on the way down.
COMB_5 = _draw(
    "comb5",
    ". . . . S",
    "# # . # #",
    ". . . . .",
    "# # . # #",
    ". . . . G",
)
# Loops: (1,4) is first reached the long way round and later by a shorter path.
RECREATE_7 = _draw(
    "recreate7",
    ". . . . . . .",
    "# # . # # # .",
    "S . . . . . .",
    ". # . # . # #",
    ". . . # . . .",
    ". # # # # # .",
    ". . G . . . .",
)


def _ops(*rows: tuple) -> tuple[Op, ...]:
    return tuple(Op(*row) for row in rows)


def _bfs(maze: Maze) -> dict:
    dist, queue = {maze.start: 0}, deque([maze.start])
    while queue:
        cell = queue.popleft()
        for nb in maze.neighbours(cell):
            if nb not in dist:
                dist[nb] = dist[cell] + 1
                queue.append(nb)
    return dist


def _plan_words(cells) -> list[str]:
    return ["plan", *(str(v) for cell in cells for v in cell), EOS]


def test_astar__hand_worked_3x3_loop_tie_broken_row_major():
    # h = (2 - x) + (2 - y). After closing (0,0), (1,0) and (0,1) tie on f = 4, h = 3: the row-major
    # tie-break (smaller y) takes (1,0), and the search never returns to (0,1).
    expected = _ops(
        ("create", 0, 0, 0, 4),
        ("close", 0, 0, 0, 4),
        ("create", 1, 0, 1, 3),  # right
        ("create", 0, 1, 1, 3),  # down
        ("close", 1, 0, 1, 3),  # ties (0,1) on (f, h), wins on y
        ("create", 2, 0, 2, 2),
        ("close", 2, 0, 2, 2),  # f 4, h 2 beats (0,1)'s h 3
        ("create", 2, 1, 3, 1),
        ("close", 2, 1, 3, 1),
        ("create", 2, 2, 4, 0),
        ("close", 2, 2, 4, 0),
    )
    search = astar(OPEN_3)
    assert search.ops == expected
    assert search.path == ((0, 0), (1, 0), (2, 0), (2, 1), (2, 2))
    assert search.n_ops == OPEN_3.difficulty == 11


def test_astar__hand_worked_5x5_dead_end_entered_on_the_h_tie_break():
    # h = (4 - x) + (4 - y). From (2,2) both (3,2) and (2,3) have f = 8, h = 3: row-major takes (3,2); its
    # child (4,2) (f 8, h 2) then beats (2,3) on h, so the dead end is closed before the real way down.
    expected = _ops(
        ("create", 4, 0, 0, 4),
        ("close", 4, 0, 0, 4),
        ("create", 3, 0, 1, 5),
        ("close", 3, 0, 1, 5),
        ("create", 2, 0, 2, 6),
        ("close", 2, 0, 2, 6),
        ("create", 2, 1, 3, 5),  # down before left
        ("create", 1, 0, 3, 7),
        ("close", 2, 1, 3, 5),  # f 8 against (1,0)'s 10
        ("create", 2, 2, 4, 4),
        ("close", 2, 2, 4, 4),
        ("create", 3, 2, 5, 3),  # right
        ("create", 2, 3, 5, 3),  # down
        ("create", 1, 2, 5, 5),  # left
        ("close", 3, 2, 5, 3),  # ties (2,3) on (f, h), wins on y
        ("create", 4, 2, 6, 2),
        ("close", 4, 2, 6, 2),  # dead end: (4,1) and (4,3) are walls
        ("close", 2, 3, 5, 3),
        ("create", 2, 4, 6, 2),
        ("close", 2, 4, 6, 2),
        ("create", 3, 4, 7, 1),
        ("create", 1, 4, 7, 3),
        ("close", 3, 4, 7, 1),
        ("create", 4, 4, 8, 0),
        ("close", 4, 4, 8, 0),
    )
    search = astar(COMB_5)
    assert search.ops == expected
    assert search.path == ((4, 0), (3, 0), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4), (3, 4), (4, 4))
    assert search.n_ops == 25


def test_astar__hand_worked_7x7_open_cell_recreated_with_a_smaller_g():
    # h = |x - 2| + (6 - y). (1,4) is created from (2,4) with g 5, then from (0,4) with g 3 < 5: a second
    # create; its stale g-5 entry is never closed.
    expected = _ops(
        ("create", 0, 2, 0, 6),
        ("close", 0, 2, 0, 6),
        ("create", 1, 2, 1, 5),  # right
        ("create", 0, 3, 1, 5),  # down
        ("close", 1, 2, 1, 5),  # ties (0,3) on (f, h), wins on y
        ("create", 2, 2, 2, 4),
        ("close", 2, 2, 2, 4),
        ("create", 2, 1, 3, 5),
        ("create", 3, 2, 3, 5),
        ("create", 2, 3, 3, 3),
        ("close", 2, 3, 3, 3),
        ("create", 2, 4, 4, 2),
        ("close", 2, 4, 4, 2),
        ("create", 1, 4, 5, 3),  # f 8
        ("close", 0, 3, 1, 5),  # f 6, the lowest left
        ("create", 0, 4, 2, 4),
        ("close", 0, 4, 2, 4),
        ("create", 1, 4, 3, 3),  # g 3 < 5: re-created, f 6
        ("create", 0, 5, 3, 3),
        ("close", 1, 4, 3, 3),  # ties (0,5) on (f, h), wins on y; a dead end
        ("close", 0, 5, 3, 3),
        ("create", 0, 6, 4, 2),
        ("close", 0, 6, 4, 2),
        ("create", 1, 6, 5, 1),
        ("close", 1, 6, 5, 1),
        ("create", 2, 6, 6, 0),
        ("close", 2, 6, 6, 0),
    )
    search = astar(RECREATE_7)
    assert search.ops == expected
    assert search.path == ((0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (1, 6), (2, 6))
    assert search.n_ops == 27


def test_astar__hand_worked_5x5_equal_g_is_no_improvement():
    # h = (4 - x) + (4 - y). A wall column keeps the goal from the start; (0,2) is created from (1,2) with g 4,
    # and (0,3) reaches it with g 4 again: not strictly smaller, so no second create.
    maze = _draw(
        "equal5",
        ". . . . .",
        ". # . # .",
        ". . . # .",
        ". # . # .",
        ". . S # G",
    )
    expected = _ops(
        ("create", 2, 4, 0, 2),
        ("close", 2, 4, 0, 2),
        ("create", 2, 3, 1, 3),  # up
        ("create", 1, 4, 1, 3),  # left
        ("close", 2, 3, 1, 3),  # ties (1,4) on (f, h), wins on y
        ("create", 2, 2, 2, 4),
        ("close", 1, 4, 1, 3),
        ("create", 0, 4, 2, 4),
        ("close", 2, 2, 2, 4),  # ties (0,4), wins on y
        ("create", 2, 1, 3, 5),
        ("create", 1, 2, 3, 5),
        ("close", 0, 4, 2, 4),
        ("create", 0, 3, 3, 5),
        ("close", 2, 1, 3, 5),  # three-way tie on (8, 5): y 1 < 2 < 3
        ("create", 2, 0, 4, 6),
        ("close", 1, 2, 3, 5),
        ("create", 0, 2, 4, 6),
        ("close", 0, 3, 3, 5),  # (0,2) again at g 4: nothing written
        ("close", 2, 0, 4, 6),  # ties (0,2) on (f, h), wins on y
        ("create", 3, 0, 5, 5),
        ("create", 1, 0, 5, 7),
        ("close", 3, 0, 5, 5),  # f 10, h 5 beats (0,2)'s h 6
        ("create", 4, 0, 6, 4),
        ("close", 4, 0, 6, 4),
        ("create", 4, 1, 7, 3),
        ("close", 4, 1, 7, 3),
        ("create", 4, 2, 8, 2),
        ("close", 4, 2, 8, 2),
        ("create", 4, 3, 9, 1),
        ("close", 4, 3, 9, 1),
        ("create", 4, 4, 10, 0),
        ("close", 4, 4, 10, 0),
    )
    search = astar(maze)
    assert search.ops == expected and search.n_ops == 32
    assert search.path == ((2, 4), (2, 3), (2, 2), (2, 1), (2, 0), (3, 0), (4, 0), (4, 1), (4, 2), (4, 3), (4, 4))


def test_astar__unreachable_goal_raises():
    boxed = _draw("boxed", "S # .", "# # .", ". . G")
    with pytest.raises(ValueError, match="unreachable"):
        astar(boxed)


def test_astar__closes_each_cell_once_at_its_bfs_distance_in_nondecreasing_f_and_recreates_only_on_a_shorter_path():
    for maze in generate_mazes(4, 9, 40, LOOPY):
        search, dist = astar(maze), _bfs(maze)
        closes = [op for op in search.ops if op.kind == "close"]
        closed_so_far: set = set()
        assert len({(op.x, op.y) for op in closes}) == len(closes)
        assert all(op.g == dist[(op.x, op.y)] for op in closes)  # consistent h: closed at the true distance
        created: dict = {}
        for op in search.ops:  # a cell is created again only with a strictly smaller g, and never once closed
            if op.kind == "create":
                assert created.get((op.x, op.y), op.g + 1) > op.g and (op.x, op.y) not in closed_so_far
                created[(op.x, op.y)] = op.g
            else:
                closed_so_far.add((op.x, op.y))
        fs = [op.g + op.h for op in closes]
        assert fs == sorted(fs)
        assert (closes[-1].x, closes[-1].y) == maze.goal and search.ops[0] == Op("create", *maze.start, 0, closes[0].h)
        assert len(search.path) == dist[maze.goal] + 1


@pytest.mark.parametrize("mode", ["deliberate", "direct"])
def test_parse__canonical_completion_is_correct(mode):
    for maze in [OPEN_3, COMB_5, *generate_mazes(1, 9, 20, LOOPY)]:
        n_ops = astar(maze).n_ops
        words = completion_words(maze, mode)
        parsed = parse_maze(maze, words)
        assert parsed.mode == mode and parsed.correct and parsed.reward == 1.0 and not parsed.format_error
        assert parsed.plan_valid and parsed.answer == astar(maze).path and parsed.length == len(words)
        assert parsed.n_wrong_steps == parsed.n_skipped_steps == 0 and not parsed.copied_answer
        assert parsed.trace_valid == (mode == "deliberate")
        assert parsed.n_trace_ops == (n_ops if mode == "deliberate" else 0)
        assert parsed.lucky_success == (mode == "direct" and maze.size > SHORTCUT_SIZE)


def test_completion_words__shape():
    words = completion_words(OPEN_3, "deliberate")
    assert words[:6] == [THINK, "create", "0", "0", "0", "4"]
    assert words[1 + 5 * 11 :] == [END_THINK, "plan", "0", "0", "1", "0", "2", "0", "2", "1", "2", "2", EOS]
    assert completion_words(OPEN_3, "direct") == words[1 + 5 * 11 + 1 :]


def test_parse__one_wrong_g_is_one_wrong_step_and_the_plan_still_counts():
    words = completion_words(COMB_5, "deliberate")
    words[1 + 5 * 6 + 3] = "9"  # g of op 6, create (2,1): 3 -> 9
    parsed = parse_maze(COMB_5, words)
    assert not parsed.format_error and not parsed.trace_valid
    assert parsed.n_wrong_steps == 1
    assert parsed.n_skipped_steps == 1  # the true op 6 is nowhere in the written trace
    assert parsed.correct and parsed.lucky_success  # the verifier checks only the plan


def test_parse__dropped_op_is_one_skipped_step_and_shifts_the_rest():
    words = completion_words(COMB_5, "deliberate")
    del words[1 + 5 * 16 : 1 + 5 * 17]  # drop op 16, close (4,2) (the dead end)
    parsed = parse_maze(COMB_5, words)
    assert parsed.n_trace_ops == 24 and parsed.n_skipped_steps == 1
    assert parsed.n_wrong_steps == 24 - 16  # every later op sits one index early
    assert parsed.correct and parsed.lucky_success and not parsed.trace_valid


def test_parse__extra_ops_are_wrong_steps():
    words = completion_words(OPEN_3, "deliberate")
    end = words.index(END_THINK)
    words[end:end] = ["close", "0", "1", "1", "3"] * 2
    parsed = parse_maze(OPEN_3, words)
    assert parsed.n_wrong_steps == 2 and parsed.n_skipped_steps == 0 and not parsed.trace_valid


def test_parse__valid_but_longer_plan_on_a_loop_is_not_correct():
    loop = _draw(
        "loop5",
        ". . G . S",
        "# # . # .",
        ". . . . .",
        "# # . # #",
        ". . . . .",
    )
    long_way = [(4, 0), (4, 1), (4, 2), (3, 2), (2, 2), (2, 1), (2, 0)]
    parsed = parse_maze(loop, _plan_words(long_way))
    assert parsed.plan_valid and not parsed.correct and not parsed.format_error
    assert parse_maze(loop, _plan_words([(4, 0), (3, 0), (2, 0)])).correct
    trace = completion_words(loop, "deliberate")
    parsed = parse_maze(loop, trace[: trace.index("plan")] + _plan_words(long_way))
    assert parsed.trace_valid and parsed.plan_valid and not parsed.correct and not parsed.lucky_success


def test_parse__plan_through_a_wall_or_off_the_grid_is_invalid_but_well_formed():
    straight_down = [(4, 0), (4, 1), (4, 2), (4, 3), (4, 4)]
    parsed = parse_maze(COMB_5, _plan_words(straight_down))
    assert not parsed.plan_valid and not parsed.correct and not parsed.format_error
    off_grid = parse_maze(COMB_5, ["plan", "4", "0", "5", "0", "4", "0", EOS])
    assert not off_grid.format_error and off_grid.answer == ((4, 0), (5, 0), (4, 0)) and not off_grid.plan_valid
    wrong_end = [(4, 0), (3, 0), (2, 0)]
    assert not parse_maze(COMB_5, _plan_words(wrong_end)).plan_valid


def test_parse__copied_answer_is_start_then_goal():
    parsed = parse_maze(COMB_5, _plan_words([(4, 0), (4, 4)]))
    assert parsed.copied_answer and not parsed.correct and parsed.mode == "direct"
    assert not parse_maze(COMB_5, _plan_words([(4, 0), (3, 0), (4, 4)])).copied_answer
    adjacent = _draw("adjacent", "S G .", ". # .", ". . .")
    parsed = parse_maze(adjacent, _plan_words([(0, 0), (1, 0)]))
    assert parsed.correct and not parsed.copied_answer


@pytest.mark.parametrize(
    "words",
    [
        [],
        [EOS],
        ["plan"],
        ["plan", EOS],  # no cell
        ["plan", "0", EOS],  # odd coordinate count
        ["plan", "0", "0", "2", "2"],  # truncated: no <eos>
        ["plan", "0", "0", EOS, EOS],
        ["0", "0", EOS],  # no mode word
        [THINK, "plan", "0", "0", "2", "2", EOS],  # no </think>
        [THINK, END_THINK, "0", "0", "2", "2", EOS],  # no plan word
        [THINK, "create", "0", "0", "0", END_THINK, "plan", "0", "0", EOS],  # 4-word op
        [THINK, "open", "0", "0", "0", "4", END_THINK, "plan", "0", "0", EOS],  # unknown kind
        [THINK, "close", "0", "0", "0", "4", END_THINK, END_THINK, "plan", "0", "0", EOS],
        [THINK, "close", "0", "0", "0", "82", END_THINK, "plan", "0", "0", EOS],  # past the vocabulary
        ["plan", "0", "00", EOS],  # not a vocabulary number
        ["plan", "0", "-1", EOS],
        ["plan", "0", "²", EOS],
        ["plan", "9" * 5000, "0", EOS],
    ],
)
def test_parse__malformed_completions_are_format_errors(words):
    parsed = parse_maze(OPEN_3, words)
    assert parsed.format_error and parsed.answer is None and not parsed.correct and parsed.reward == 0.0
    assert not parsed.plan_valid and not parsed.trace_valid and not parsed.lucky_success
    assert parsed.length == len(words) and parsed.n_skipped_steps == OPEN_3.search.n_ops  # no step verifiably written
    assert parsed.mode == {THINK: "deliberate", "plan": "direct"}.get(words[0] if words else None)


def test_parse__empty_trace_is_well_formed_and_skips_every_op():
    parsed = parse_maze(OPEN_3, [THINK, END_THINK, *_plan_words(astar(OPEN_3).path)])
    assert not parsed.format_error and parsed.correct and parsed.lucky_success
    assert parsed.n_trace_ops == 0 and parsed.n_skipped_steps == 11 and parsed.n_wrong_steps == 0


def _assert_consistent(maze: Maze, words: list[str]) -> None:
    parsed = parse_maze(maze, words)
    search = astar(maze)
    assert parsed.length == len(words)
    assert parsed.reward == float(parsed.correct)
    if parsed.format_error:
        assert parsed.answer is None and not (parsed.correct or parsed.plan_valid or parsed.trace_valid)
        return
    assert parsed.mode is not None and words[-1] == EOS
    assert parsed.correct == (parsed.plan_valid and len(parsed.answer) == len(search.path))
    assert not parsed.plan_valid or (parsed.answer[0], parsed.answer[-1]) == (maze.start, maze.goal)
    clean = parsed.n_wrong_steps == parsed.n_skipped_steps == 0
    assert parsed.trace_valid == (parsed.mode == "deliberate" and clean)
    assert parsed.lucky_success == (parsed.correct and not (parsed.mode == "deliberate" and parsed.trace_valid))
    assert parsed.n_wrong_steps <= parsed.n_trace_ops and parsed.n_skipped_steps <= search.n_ops


def test_parse__random_word_strings_never_crash_and_read_consistently():
    rng = random.Random(0)
    maze = generate_mazes(2, 7, 1, SPEC)[0]
    vocab = [*SPEC.vocab, "x", "-1", "999", "", "07", "²", "plan", THINK, END_THINK, EOS]
    for _ in range(2000):
        _assert_consistent(maze, [rng.choice(vocab) for _ in range(rng.randint(0, 40))])


def test_parse__perturbed_canonical_completions_never_crash_and_read_consistently():
    rng = random.Random(1)
    mazes = generate_mazes(3, 7, 10, LOOPY)
    vocab = [*SPEC.vocab, "x", "-1", "999", ""]
    outcomes = Counter()
    for i in range(1500):
        maze = mazes[i % len(mazes)]
        words = completion_words(maze, rng.choice(["deliberate", "direct"]))
        for _ in range(rng.randint(1, 3)):
            j = rng.randrange(len(words) + 1)
            edit = rng.choice(["delete", "insert", "replace", "number"])
            if edit == "delete" and j < len(words):
                del words[j]
            elif edit == "insert":
                words.insert(j, rng.choice(vocab))
            elif edit == "replace" and j < len(words):
                words[j] = rng.choice(vocab)
            elif j < len(words) and words[j].isdigit():
                words[j] = str(max(0, int(words[j]) + rng.choice([-1, 1])))
        _assert_consistent(maze, words)
        parsed = parse_maze(maze, words)
        outcomes[(parsed.format_error, parsed.correct)] += 1
    # the perturbations reach every branch: malformed, well formed and wrong, and still right
    assert min(outcomes[(True, False)], outcomes[(False, False)], outcomes[(False, True)]) >= 50


def test_generate_mazes__same_seed_same_mazes_and_prefix_stable():
    a = [m.as_record() for m in generate_mazes(3, 7, 30, LOOPY)]
    assert a == [m.as_record() for m in generate_mazes(3, 7, 30, LOOPY)]
    assert a[:5] == [m.as_record() for m in generate_mazes(3, 7, 5, LOOPY)]
    assert a != [m.as_record() for m in generate_mazes(4, 7, 30, LOOPY)]
    assert [m.pid for m in generate_mazes(3, 7, 2, LOOPY)] == ["s3-n7-l300-0", "s3-n7-l300-1"]


def test_generate_mazes__golden_values_are_machine_independent():
    # PCG64 streams are fixed by numpy's stability policy; recorded once from this implementation.
    maze = generate_mazes(7, 5, 3, SPEC)[2]
    assert maze.as_record() == {
        "pid": "s7-n5-l0-2",
        "k": 5,
        "walls": [[1, 0], [1, 1], [3, 1], [3, 2], [1, 3], [3, 3], [1, 4], [3, 4]],
        "start": [0, 4],
        "goal": [4, 2],
    }


def _passages_and_rooms(maze: Maze) -> tuple[int, int]:
    n = maze.size
    open_passages = sum(maze.free((x, y)) for y in range(n) for x in range(n) if (x + y) % 2)
    return open_passages, ((n + 1) // 2) ** 2


@pytest.mark.parametrize("size", [3, 5, 9])
def test_generate_mazes__loop_free_mazes_are_spanning_trees_and_loops_add_passages(size):
    for maze in generate_mazes(0, size, 50, SPEC):
        passages, rooms = _passages_and_rooms(maze)
        assert passages == rooms - 1
        assert len(_bfs(maze)) == rooms + passages  # every free cell, so every room, is reached
        assert all(not maze.free((x, y)) for y in range(1, size, 2) for x in range(1, size, 2))
        assert maze.start != maze.goal and maze.start[0] % 2 == maze.start[1] % 2 == maze.goal[0] % 2 == 0
    extra = [p - (r - 1) for p, r in map(_passages_and_rooms, generate_mazes(0, size, 50, MazeSpec(loop_frac=0.5)))]
    # a tree leaves (size // 2)^2 passages closed, and loop_frac 0.5 opens half of them on average
    assert min(extra) >= 0 and np.mean(extra) > 0.3 * (size // 2) ** 2


def test_generate_mazes__astar_path_is_a_shortest_path():
    for maze in generate_mazes(5, 9, 60, LOOPY):
        path, dist = astar(maze).path, _bfs(maze)
        assert path[0] == maze.start and path[-1] == maze.goal and len(path) == dist[maze.goal] + 1
        assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in zip(path, path[1:]))
        assert all(maze.free(c) for c in path)


def test_draw_maze__wilson_draws_uniform_spanning_trees():
    # 2 x 2 rooms form a 4-cycle with 4 spanning trees, one per closed passage; a uniform sampler closes each
    # a quarter of the time (a random depth-first search would close only the two next to the first room).
    rng = np.random.Generator(np.random.PCG64(11))
    closed = Counter(next(w for w in draw_maze(rng, 3, SPEC).walls if w != (1, 1)) for _ in range(4000))
    assert set(closed) == {(1, 0), (0, 1), (2, 1), (1, 2)}
    assert all(abs(c / 4000 - 0.25) < 0.03 for c in closed.values())  # 4.4 standard errors


def test_maze_records_round_trip_through_json():
    for maze in [OPEN_3, COMB_5, *generate_mazes(6, 9, 10, LOOPY)]:
        rec = json.loads(json.dumps(maze.as_record()))
        assert Maze.from_record(rec) == maze and rec["k"] == maze.k == maze.size


def test_prompt_words__shape_and_vocabulary():
    words = prompt_words(COMB_5)
    assert words[:3] == [BOS, "size", "5"] and words[3:9] == ["wall", "0", "1", "wall", "1", "1"]
    assert words[-7:] == ["start", "4", "0", "goal", "4", "4", EQUALS]
    assert len(words) == 3 + 3 * len(COMB_5.walls) + 7
    vocab = set(SPEC.vocab)
    assert len(vocab) == len(SPEC.vocab) and len(SPEC.numbers) == 82
    for maze in generate_mazes(8, 9, 20, MazeSpec(loop_frac=1.0)):
        assert set(prompt_words(maze) + completion_words(maze, "deliberate")) <= vocab


def test_spec_and_maze_validation():
    with pytest.raises(ValueError, match="max_size"):
        MazeSpec(max_size=8)
    with pytest.raises(ValueError, match="loop_frac"):
        MazeSpec(loop_frac=1.5)
    with pytest.raises(ValueError, match="size"):
        generate_mazes(0, 11, 1, SPEC)
    with pytest.raises(ValueError, match="size"):
        generate_mazes(0, 4, 0, SPEC)
    with pytest.raises(ValueError, match="n: "):
        generate_mazes(0, 5, -1, SPEC)
    with pytest.raises(ValueError, match="walls"):
        Maze("bad", 3, ((1, 1), (1, 0)), start=(0, 0), goal=(2, 2))
    with pytest.raises(ValueError, match="start"):
        Maze("bad", 3, ((1, 1),), start=(1, 1), goal=(2, 2))
    big = generate_mazes(0, 11, 1, MazeSpec(max_size=11))[0]
    assert parse_maze(big, completion_words(big, "deliberate")).correct  # numbers bounded by the maze, not a spec
    assert parse_maze(COMB_5, ["plan", "4", "0", "26", "0", EOS]).format_error  # above 5**2: no number of this maze
