"""The counting family on planted completions, and a band study on it end to end."""

import json

import pytest

from experiments.harness.tasks.counting import Counting, CountSpec, Problem
from experiments.harness.tasks.registry import task_of, task_of_vocab
from experiments.harness.training.model import build_tokenizer

LIST = Problem("p", "a", ("a", "b", "a"))  # count a in a b a: running counts 1 1 2


def test_counting__canonical_words_and_the_running_counts():
    assert LIST.prompt_words() == ["<bos>", "count", "a", "a", "b", "a", "="]
    assert LIST.completion_words("deliberate") == ["<think>", "a", "1", "b", "1", "a", "2", "</think>", "2", "<eos>"]
    assert LIST.completion_words("direct") == ["2", "<eos>"]


@pytest.mark.parametrize(
    "words, flags",
    [
        # b 2 is wrong; a 3 follows from the 2 written before it (steps are judged from what was written)
        (
            ["<think>", "a", "1", "b", "2", "a", "3", "</think>", "2", "<eos>"],
            dict(correct=True, n_wrong_steps=1, lucky_success=True),
        ),
        (
            ["<think>", "a", "1", "a", "2", "</think>", "2", "<eos>"],
            dict(correct=True, n_skipped_steps=1, lucky_success=True),
        ),
        (["3", "<eos>"], dict(correct=False, copied_answer=True, n_skipped_steps=3)),
        (["2", "<eos>"], dict(correct=True, lucky_success=True)),  # a direct count of 3 items is luck
        (["<think>", "a", "</think>", "2", "<eos>"], dict(correct=False, format_error=True)),
    ],
)
def test_counting_parse__flags_planted_errors(words, flags):
    out = LIST.parse(words)
    assert {name: getattr(out, name) for name in flags} == flags and out.length == len(words)


def test_counting__a_run_records_its_task_and_a_checkpoint_speaks_it():
    task = task_of({"task": "counting", "n_symbols": 4, "max_items": 9})
    assert task == Counting(CountSpec(4, 9)) and task_of(json.loads(json.dumps(task.params))) == task
    assert task_of_vocab(build_tokenizer(task).get_vocab()) == task
    assert task.knobs(20) == tuple(range(1, 10)) and task.chance == 0.1


@pytest.mark.slow
def test_band_study__runs_on_the_counting_family(tmp_path):
    """The third family through the whole band study at smoke scale: registered in one line, nothing else edited."""
    from experiments import band_study
    from experiments.harness import cli

    args = cli.parse(
        band_study.BandStudyArgs,
        band_study.PRESETS,
        ["--preset", "smoke", "--task", "counting", "--out", str(tmp_path / "c")],
    )
    band_study.main(args)
    results = json.loads((tmp_path / "c" / "results.json").read_text())
    assert results["verdict"] and json.loads((tmp_path / "c" / "config.json").read_text())["task"]["task"] == "counting"
