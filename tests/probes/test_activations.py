import dataclasses
import json

import numpy as np
import pytest
import torch

from experiments.harness import seeds
from experiments.harness.reading.probe_sets import ProbeSetSpec, build_probe_set
from experiments.harness.tasks.arith import (
    Arithmetic,
    TaskSpec,
    completion_roles,
    completion_words,
    generate_problems,
    parse_completion,
    prompt_roles,
)
from experiments.harness.tasks.maze import Mazes, MazeSpec
from experiments.harness.tasks.registry import task_of_vocab
from experiments.harness.training.model import ModelSpec, build_model, build_tokenizer, save_model
from probes.activations import (
    ROLES,
    LabelledSequence,
    load_sequences,
    open_cache,
    save_sequences,
    sequences_digest,
    unique_prefix_masks,
    write_cache,
)
from probes.models import load_bridge, load_hf, load_tokenizer

SPEC = TaskSpec()
HOOK = "blocks.0.hook_resid_post"
PROBE = ProbeSetSpec(k_min=1, k_max=3, per_k=5, n_samples=2)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tok = build_tokenizer(SPEC)
    out = tmp_path_factory.mktemp("model") / "ckpt"
    save_model(build_model(ModelSpec(d_model=32, n_layers=2, n_heads=2, d_mlp=64), tok, seed=0), tok, out)
    return out


@pytest.fixture(scope="module")
def probe(model_dir, tmp_path_factory):
    """(bridge, tokenizer, sequences, cache) for a random tiny model."""
    bridge, tok = load_bridge(model_dir), load_tokenizer(model_dir)
    seqs = build_probe_set(bridge.original_model, tok, PROBE, Arithmetic(SPEC))
    out = tmp_path_factory.mktemp("cache")
    write_cache(
        bridge, HOOK, seqs, out, model_dir=str(model_dir), fingerprint="fp", pad_id=tok.pad_token_id, batch_size=7
    )
    return bridge, tok, seqs, open_cache(out)


def test_prompt_roles__operands_operators_and_steps():
    pr = generate_problems(0, 2, 1, SPEC)[0]  # <bos> x0 op1 x1 op2 x2 =
    roles, steps = prompt_roles(pr)
    assert roles == ["special", "operand", "operator", "operand", "operator", "operand", "special"]
    assert steps == [-1, 0, 1, 1, 2, 2, -1]


def test_completion_roles__canonical_trace_and_direct_answer():
    pr = generate_problems(0, 2, 1, SPEC)[0]
    words = completion_words(pr, "deliberate")  # <think> r0 op1 x1 r1 op2 x2 r2 </think> a <eos>
    roles, steps = completion_roles(words)
    assert roles == [
        "special",
        "intermediate",
        "operator",
        "operand",
        "intermediate",
        "operator",
        "operand",
        "intermediate",
        "special",
        "answer",
        "special",
    ]
    assert steps == [-1, 0, 1, 1, 1, 2, 2, 2, -1, -1, -1]
    assert completion_roles(completion_words(pr, "direct")) == (["answer", "special"], [-1, -1])


def test_completion_roles__malformed_completions_are_labelled_by_place():
    roles, steps = completion_roles(["<think>", "3", "+", "<pad>", "4", "</think>", "*", "5"])
    assert roles == ["special", "intermediate", "operator", "special", "answer", "special", "operator", "answer"]
    assert len(steps) == 8 and completion_roles([]) == ([], [])


def test_task_of_vocab__reads_the_language_from_the_vocabulary():
    spec = TaskSpec(p=7, ops=("+", "*"))
    assert task_of_vocab(build_tokenizer(Arithmetic(spec)).get_vocab()) == Arithmetic(spec)
    mazes = Mazes(MazeSpec(max_size=7))
    assert task_of_vocab(build_tokenizer(mazes).get_vocab()) == mazes


def test_unique_prefix_masks__first_occurrence_within_each_split():
    def seq(ids, split):
        n = len(ids)
        return LabelledSequence(
            tuple(ids), ("special",) * n, (-1,) * n, 1, "p", 1, "b", "direct", "canonical", True, split
        )

    masks = unique_prefix_masks(
        [seq([1, 5, 6], "train"), seq([1, 5, 7], "train"), seq([1, 5, 6, 8], "train"), seq([1, 5], "eval")]
    )
    assert [m.tolist() for m in masks] == [
        [True, True, True],
        [False, False, True],  # shares the prefix 1 5
        [False, False, False, True],  # 1 5 6 seen in full
        [True, True],  # another split counts on its own
    ]


def test_labelled_sequence__rejects_mismatched_labels():
    with pytest.raises(ValueError, match="roles"):
        LabelledSequence((1, 2), ("special",), (-1, -1), 1, "p", 1, "b", "direct", "canonical", True, "train")
    with pytest.raises(ValueError, match="unknown roles"):
        LabelledSequence((1,), ("verb",), (-1,), 1, "p", 1, "b", "direct", "canonical", True, "train")


def test_build_probe_set__canonical_and_own_samples_per_problem(probe):
    _, tok, seqs, _ = probe
    n_problems = PROBE.per_k * (PROBE.k_max - PROBE.k_min + 1)
    assert len(seqs) == n_problems * (2 + PROBE.n_samples)
    by_pid: dict[str, list[LabelledSequence]] = {}
    for s in seqs:
        by_pid.setdefault(s.pid, []).append(s)
    assert len(by_pid) == n_problems
    for group in by_pid.values():
        assert len({s.split for s in group}) == 1  # a problem never straddles splits
        canonical = [s for s in group if s.source == "canonical"]
        assert sorted(s.mode for s in canonical) == ["deliberate", "direct"] and all(s.correct for s in canonical)
        prompt = group[0].token_ids[: group[0].n_prompt]
        assert all(s.token_ids[: s.n_prompt] == prompt for s in group)
    problems = {
        pr.pid: pr
        for k in range(1, 4)
        for pr in seeds.problems(PROBE.stream, PROBE.seed, k, PROBE.per_k, Arithmetic(SPEC))
    }
    for s in (s for s in seqs if s.source == "sampled"):  # labels agree with the task's own parser
        parsed = parse_completion(problems[s.pid], tok.convert_ids_to_tokens(list(s.token_ids[s.n_prompt :])))
        assert s.correct == parsed.correct
        assert s.mode == ("malformed" if parsed.format_error or parsed.mode is None else parsed.mode)
    n_eval = sum(s.split == "eval" for s in seqs)
    assert 0 < n_eval < len(seqs) / 3


def test_sequences__save_load_round_trip(probe, tmp_path):
    seqs = probe[2]
    save_sequences(tmp_path / "s.json", seqs, {"note": 1})
    meta, back = load_sequences(tmp_path / "s.json")
    assert meta == {"note": 1} and back == seqs and sequences_digest(back) == sequences_digest(seqs)
    assert sequences_digest(seqs[1:]) != sequences_digest(seqs)


def test_write_cache__rows_are_the_models_own_hidden_states(probe, model_dir):
    _, _, seqs, cache = probe
    hf = load_hf(model_dir)
    for i in (0, 5, len(seqs) - 1):
        rows = np.flatnonzero(cache.seq_N == i)
        assert cache.pos_N[rows].tolist() == list(range(len(seqs[i].token_ids)))  # contiguous, in order
        with torch.no_grad():
            hidden = hf(torch.tensor([seqs[i].token_ids]), output_hidden_states=True).hidden_states[1][0]
        torch.testing.assert_close(torch.from_numpy(np.asarray(cache.acts_ND[rows])), hidden, atol=1e-5, rtol=1e-5)
        assert cache.token_N[rows].tolist() == list(seqs[i].token_ids)
        assert [ROLES[r] for r in cache.role_N[rows]] == list(seqs[i].roles)
        assert cache.step_N[rows].tolist() == list(seqs[i].steps)


def test_write_cache__batch_size_does_not_change_any_activation(probe, tmp_path):
    bridge, tok, seqs, cache = probe
    write_cache(bridge, HOOK, seqs, tmp_path, model_dir="m", fingerprint="fp", pad_id=tok.pad_token_id, batch_size=64)
    other = open_cache(tmp_path)
    key = lambda c: np.lexsort((c.pos_N, c.seq_N))  # noqa: E731 -- row order follows the batches
    a, b = np.asarray(cache.acts_ND)[key(cache)], np.asarray(other.acts_ND)[key(other)]
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert (cache.unique_N[key(cache)] == other.unique_N[key(other)]).all()


def test_open_cache__labels_splits_and_pairs(probe):
    _, _, seqs, cache = probe
    assert cache.hook_name == HOOK and cache.fingerprint == "fp" and cache.d_model == 32
    assert cache.n_tokens == sum(len(s.token_ids) for s in seqs)
    assert (cache.seq_column("k") == np.asarray([seqs[i].k for i in cache.seq_N])).all()
    train, evals = cache.rows("train"), cache.rows("eval")
    assert len(np.intersect1d(train, evals)) == 0 and cache.unique_N[train].all()
    assert len(cache.rows("train", unique=False)) > len(train)  # prompts repeat across a problem's sequences
    pairs = cache.pair_rows("train")
    assert (cache.seq_N[pairs - 1] == cache.seq_N[pairs]).all() and (
        cache.pos_N[pairs - 1] + 1 == cache.pos_N[pairs]
    ).all()


def test_open_cache__refuses_another_format(probe, tmp_path):
    cache = probe[3]
    for name in ("acts.npy", "tokens.safetensors", "sequences.json"):
        (tmp_path / name).write_bytes((cache.path / name).read_bytes())
    meta = json.loads((cache.path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(ValueError, match="format 99"):
        open_cache(tmp_path)


def test_write_cache__unknown_hook_is_named(probe, tmp_path):
    bridge, tok, seqs, _ = probe
    with pytest.raises(KeyError, match="blocks.9.hook_resid_post"):
        write_cache(bridge, "blocks.9.hook_resid_post", seqs[:2], tmp_path, model_dir="m", fingerprint="", pad_id=0)


def test_probe_set_spec__validates():
    with pytest.raises(ValueError, match="k_min"):
        ProbeSetSpec(k_min=3, k_max=2)
    with pytest.raises(ValueError, match="eval_every"):
        dataclasses.replace(PROBE, eval_every=1)
