import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from experiments import pretrain
from experiments.harness.training import chunk_pool
from experiments.harness.training.model import build_tokenizer
from experiments.harness.training.supervised import Recipe, collate
from experiments.pretrain import BEYOND_RANGE, PRESETS, PretrainArgs
from probes.layout import RunDirError

# The smoke preset shortened further: these tests check mechanics, not competence.
SMOKE = dataclasses.replace(
    PretrainArgs(**{**PRESETS["smoke"], **BEYOND_RANGE["smoke"]}), steps=30, checkpoint_every=10, eval_per_k=4
)


def smoke(tmp_path, name="run", **kw) -> PretrainArgs:
    return dataclasses.replace(SMOKE, out=tmp_path / name, **kw)


def test_recipe_batch__labels_cover_the_completion_only_and_depend_on_seed_and_step():
    args = SMOKE
    vocab = build_tokenizer(args.family).get_vocab()
    batch = args.recipe.batch(0, vocab)
    assert batch == args.recipe.batch(0, vocab) and batch != args.recipe.batch(1, vocab)
    ids, labels = collate(batch, vocab)
    for row_ids, row_labels in zip(ids.tolist(), labels.tolist()):
        eq = row_ids.index(vocab["="])
        assert all(lab == -100 for lab in row_labels[: eq + 1])  # prompt is never a target
        n_target = sum(lab != -100 for lab in row_labels)
        assert row_labels[eq + n_target] == vocab["<eos>"]  # targets run up to <eos>
        first = row_labels[eq + 1]
        assert first == vocab["<think>"] or 4 + 3 + len(args.ops) <= first  # a mode choice


def test_recipe_batch__trace_errors_start_at_trace_error_from():
    """The curriculum: the clean recipe's batches before ``trace_error_from``, noisy ones from it on."""
    noisy = dataclasses.replace(SMOKE, trace_error=0.5, trace_error_from=10).recipe
    clean = SMOKE.recipe
    vocab = build_tokenizer(SMOKE.family).get_vocab()
    assert noisy.batch(9, vocab) == clean.batch(9, vocab)
    assert noisy.batch(10, vocab) != clean.batch(10, vocab)
    with pytest.raises(ValueError, match="trace_error_from"):
        dataclasses.replace(SMOKE, trace_error_from=SMOKE.steps)


def test_recipe_batch__direct_k_max_spreads_direct_answers_over_small_k_only():
    """Shortcut availability: with direct_k_max, direct completions have k uniform over 1..direct_k_max."""
    args = dataclasses.replace(SMOKE, direct_k_max=2, batch_size=400)
    vocab = build_tokenizer(args.family).get_vocab()
    batch = args.recipe.batch(0, vocab)
    k_of = lambda n_prompt: (n_prompt - 3) // 2  # noqa: E731 -- <bos> x0 (op x)^k =
    direct = [k_of(n) for ids, n in batch if ids[n] != vocab["<think>"]]
    deliberate = {k_of(n) for ids, n in batch if ids[n] == vocab["<think>"]}
    assert set(direct) == {1, 2} and abs(direct.count(1) - direct.count(2)) < 0.25 * len(direct)
    assert max(deliberate) == SMOKE.k_train_max  # traces keep the full range
    with pytest.raises(ValueError, match="direct_k_max"):
        dataclasses.replace(SMOKE, direct_k_max=SMOKE.k_train_max + 1)


def test_pretrain__smoke_preset_has_intermediate_competence(smoke_run):
    """Golden: the seeded smoke base model has the competence profile bands rely on."""
    table = json.loads((smoke_run / "base" / "eval.json").read_text())["accuracy"]
    assert table["1"]["direct"]["greedy"] >= 0.9  # the shortcut works at the smallest k
    assert table["3"]["direct"]["greedy"] <= 0.5  # ... and not at larger k
    assert min(table[k]["deliberate"]["greedy"] for k in ("1", "2", "3")) >= 0.9  # traces in range
    assert table["5"]["deliberate"]["greedy"] <= 0.3  # beyond the pretraining range


def test_pretrain__smoke_writes_base_model_and_eval_table(tmp_path):
    args = smoke(tmp_path)
    result = pretrain.main(args)
    base = args.out / "base"
    assert (base / "model.safetensors").is_file() and (base / "tokenizer.json").is_file()
    on_disk = json.loads((base / "eval.json").read_text())
    assert on_disk == result
    table = on_disk["accuracy"]
    assert list(table) == [str(k) for k in range(1, args.k_eval_max + 1)]
    for row in table.values():
        for mode in ("deliberate", "direct", "free"):
            assert row[mode]["n"] == args.eval_per_k
            assert 0.0 <= row[mode]["greedy"] <= 1.0 and 0.0 <= row[mode]["sampled"] <= 1.0
    config = json.loads((args.out / "config.json").read_text())
    assert config["stages"]["pretrain"]["seed"] == args.seed and "torch" in config["versions"]
    assert not (args.out / "pretrain_state.safetensors").exists()
    assert not [p for p in args.out.rglob("*") if ".tmp" in p.name]


def test_pretrain__rerun_of_a_finished_run_does_not_retrain(tmp_path, monkeypatch):
    args = smoke(tmp_path)
    pretrain.main(args)
    monkeypatch.setattr(pretrain, "train", lambda *a: pytest.fail("retrained a finished run"))
    pretrain.main(args)


def test_pretrain__different_args_refuse_to_overwrite(tmp_path):
    pretrain.main(smoke(tmp_path))
    before = (tmp_path / "run" / "base" / "model.safetensors").read_bytes()
    with pytest.raises(RunDirError, match="different pretrain arguments"):
        pretrain.main(smoke(tmp_path, seed=1))
    assert (tmp_path / "run" / "base" / "model.safetensors").read_bytes() == before


def test_pretrain__a_run_made_before_a_knob_existed_resumes_while_the_knob_keeps_its_default(tmp_path, monkeypatch):
    import json

    pretrain.main(smoke(tmp_path))
    config = tmp_path / "run" / "config.json"
    old = json.loads(config.read_text())
    del old["stages"]["pretrain"]["direct_k_max"]  # as written before the knob was added
    config.write_text(json.dumps(old))
    monkeypatch.setattr(pretrain, "train", lambda *a: pytest.fail("retrained a finished run"))
    pretrain.main(smoke(tmp_path))
    config.write_text(json.dumps(old))
    with pytest.raises(RunDirError, match="different pretrain arguments"):
        pretrain.main(smoke(tmp_path, direct_k_max=2))


def test_pretrain__resume_after_interrupt_matches_uninterrupted(tmp_path, monkeypatch):
    pretrain.main(smoke(tmp_path, name="straight"))
    real_lr_at = Recipe.lr_at

    def crash_at_step_15(recipe, step):
        if step == 15:
            raise KeyboardInterrupt
        return real_lr_at(recipe, step)

    monkeypatch.setattr(Recipe, "lr_at", crash_at_step_15)
    with pytest.raises(KeyboardInterrupt):
        pretrain.main(smoke(tmp_path, name="resumed"))
    assert (tmp_path / "resumed" / "pretrain_state.safetensors").exists()  # snapshot at step 10
    assert not (tmp_path / "resumed" / "base").exists()
    monkeypatch.setattr(Recipe, "lr_at", real_lr_at)
    pretrain.main(smoke(tmp_path, name="resumed"))
    a = load_file(tmp_path / "straight" / "base" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "base" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    straight = json.loads((tmp_path / "straight" / "base" / "eval.json").read_text())
    assert json.loads((tmp_path / "resumed" / "base" / "eval.json").read_text()) == straight


def test_pretrain__batches_built_by_worker_processes_and_steps_shared_by_helpers_give_the_same_weights(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(chunk_pool, "MIN_PARAMS", 0)  # the smoke model is small enough to stay in one process
    pretrain.main(smoke(tmp_path, name="loop", processes=1))
    pretrain.main(smoke(tmp_path, name="workers", batch_workers=2, processes=2))
    a = (tmp_path / "loop" / "base" / "model.safetensors").read_bytes()
    assert (tmp_path / "workers" / "base" / "model.safetensors").read_bytes() == a
    cfg = json.loads((tmp_path / "workers" / "config.json").read_text())["stages"]["pretrain"]
    assert "batch_workers" not in cfg and "processes" not in cfg  # how it ran, not what it is: free to change on resume


def test_pretrain__a_loss_gone_non_finite_stops_the_run_before_its_next_snapshot(tmp_path, monkeypatch):
    real_lr_at = Recipe.lr_at
    monkeypatch.setattr(Recipe, "lr_at", lambda recipe, step: float("nan") if step == 12 else real_lr_at(recipe, step))
    with pytest.raises(FloatingPointError, match="not finite by step 19"):
        pretrain.main(smoke(tmp_path))
    state = load_file(tmp_path / "run" / "pretrain_state.safetensors")
    assert all(t.isfinite().all() for t in state.values())  # the step-10 snapshot, not overwritten at 20


def test_pretrain__bf16_autocast_trains_like_fp32(tmp_path):
    """Mixed precision is numerically safe here: the same 30 steps in bf16 autocast (on the CPU) end at
    nearly the same training loss and weights as in fp32, which stays the default and is untouched."""
    losses = {}
    for precision in ("fp32", "bf16"):
        args = smoke(tmp_path, name=precision, precision=precision)
        recipe = args.recipe
        model, _ = pretrain.train(args, tmp_path / precision / "state.safetensors")
        vocab = build_tokenizer(args.family).get_vocab()
        ids_BL, labels_BL = collate(recipe.batch(10_000, vocab), vocab)  # a batch training never saw
        with torch.no_grad():
            losses[precision] = model(input_ids=ids_BL, labels=labels_BL).loss.item()
    assert abs(losses["bf16"] - losses["fp32"]) < 0.02 * losses["fp32"], losses
    with pytest.raises(ValueError, match="precision"):
        smoke(tmp_path, precision="fp16").recipe  # noqa: B018


def test_pretrain_args__a_knob_the_task_does_not_have_is_refused():
    for bad in (dict(k_train_max=2), dict(direct_k_max=2), dict(trace_error=0.1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PretrainArgs(**{**PRESETS["maze-smoke"], **bad})
