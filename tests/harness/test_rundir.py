import multiprocessing
import os
from pathlib import Path

import pytest

from experiments.harness.rundir import atomic_dir, atomic_file, clear_stale_temps

FORK = multiprocessing.get_context("fork")


def _write_file_slowly(path: Path, inside, release) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text("first writer")
        inside.set()
        assert release.wait(30)


def _write_dir_slowly(path: Path, inside, release) -> None:
    with atomic_dir(path) as tmp:
        (tmp / "who").write_text("first writer")
        inside.set()
        assert release.wait(30)


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_atomic_writers__a_second_worker_writing_the_same_artifact_leaves_the_first_ones_temp_alone(tmp_path, kind):
    """Two pool workers can make the same cache at once (the hook rule's jobs each build the base model's probe set):
    the second's clearing of stale temps removed the first's live temp, and the first crashed at its rename."""
    path = tmp_path / ("sequences.json" if kind == "file" else "acts")
    inside, release = FORK.Event(), FORK.Event()
    writer = _write_file_slowly if kind == "file" else _write_dir_slowly
    first = FORK.Process(target=writer, args=(path, inside, release))
    first.start()
    assert inside.wait(30)
    if kind == "file":
        with atomic_file(path) as tmp:
            tmp.write_text("second writer")
    else:
        with atomic_dir(path) as tmp:
            (tmp / "who").write_text("second writer")
    release.set()
    first.join(30)
    assert first.exitcode == 0
    assert (path if kind == "file" else path / "who").read_text() == "first writer"  # the last rename wins
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp is left behind


def test_clear_stale_temps__removes_the_temps_of_dead_writers_and_of_older_names_and_keeps_live_ones(tmp_path):
    path = tmp_path / "features.json"
    with atomic_file(path) as live:  # this process's own temp, still being written
        dead = FORK.Process(target=os.getpid)
        dead.start()
        dead.join()
        name = live.name.replace(f"-{os.getpid()}.", f"-{dead.pid}.")
        assert name != live.name
        (tmp_path / name).write_text("left by a killed writer")
        (tmp_path / ".features.json.abc123.tmp").write_text("an older name, without its writer")
        (tmp_path / ".features.json.xyz.tmp").mkdir()
        other_host = live.name.replace(f"@{os.uname().nodename.split('.')[0]}-", "@elsewhere-")
        (tmp_path / other_host).write_text("another host's writer: not ours to judge")
        clear_stale_temps(path)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other_host])
        live.write_text("done")
    assert path.read_text() == "done"
