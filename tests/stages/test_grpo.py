import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from experiments import grpo
from experiments.grpo import PRESETS, GRPOArgs
from experiments.harness import seeds
from experiments.harness.tasks.arith import Problem, completion_words, parse_completion, prompt_words
from experiments.harness.tasks.registry import task_of_table
from experiments.harness.training import rl
from experiments.harness.training.rl_loss import clipped_policy_loss, token_logprobs
from experiments.harness.training.rollout import Rollout, kl_to_reference, sampled_rollouts
from probes.layout import RunLayout, latest_checkpoint, read_jsonl
from probes.models import load_hf, load_tokenizer
from probes.padding import right_pad


def smoke_args(run, **kw) -> GRPOArgs:
    return dataclasses.replace(GRPOArgs(run=run, **PRESETS["smoke"]), **kw)


def make_rollout(tok, problem: Problem, words: list[str]) -> Rollout:
    return Rollout(
        problem,
        tuple(tok.convert_tokens_to_ids(prompt_words(problem))),
        tuple(tok.convert_tokens_to_ids(words)),
        parse_completion(problem, words),
    )


def completion_logprob(model, r: Rollout) -> float:
    ids = torch.tensor([list(r.prompt_ids) + list(r.completion_ids)])
    with torch.no_grad():
        lp = token_logprobs(model(input_ids=ids).logits, ids)[0]
    return lp[len(r.prompt_ids) - 1 :].sum().item()


def test_policy_update__rewarded_completion_rises_and_unrewarded_falls(smoke_run):
    model, tok = load_hf(smoke_run / "base"), load_tokenizer(smoke_run / "base")
    table = json.loads((smoke_run / "bands" / "table.json").read_text())
    problem = task_of_table(table).from_record(table["pools"]["medium"][0])
    wrong = str((problem.answer + 1) % problem.p)
    good = make_rollout(tok, problem, completion_words(problem, "deliberate"))
    bad = make_rollout(tok, problem, [wrong, "<eos>"])
    assert good.parsed.reward == 1.0 and bad.parsed.reward == 0.0
    before = completion_logprob(model, good), completion_logprob(model, bad)
    args = smoke_args(smoke_run, lr=1e-3)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    stats = rl.policy_update(model.train(), load_hf(smoke_run / "base"), opt, [[good, bad]], args.policy)
    after = completion_logprob(model.eval(), good), completion_logprob(model, bad)
    assert after[0] > before[0] and after[1] < before[1]
    assert stats["grpo/kl"] == pytest.approx(0.0, abs=1e-6)  # first step: policy == reference


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean", "constant"])
def test_policy_update__in_length_chunks_takes_the_one_batch_step(smoke_run, agg):
    """70 rollouts of three lengths (three chunks, none padded to the longest): the chunked update has the loss of one
    batch padded to its longest and moves every weight as a plain gradient step on it does, up to float rounding."""
    model, tok = load_hf(smoke_run / "base"), load_tokenizer(smoke_run / "base")
    table = json.loads((smoke_run / "bands" / "table.json").read_text())
    problems = [task_of_table(table).from_record(r) for r in table["pools"]["medium"][:5]]
    groups = [
        [make_rollout(tok, pr, completion_words(pr, "deliberate"))] * 7
        + [make_rollout(tok, pr, [str((pr.answer + j) % pr.p), "<eos>"]) for j in range(1, 8)]
        for pr in problems
    ]
    policy = dataclasses.replace(smoke_args(smoke_run).policy, loss_agg=agg)
    assert len(rl.group_chunks(groups, rl.scores(groups), True, "cpu")) == 3
    chunked, whole = model, load_hf(smoke_run / "base")
    sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.1)  # noqa: E731 -- a step that is the gradient, scaled
    stats = rl.policy_update(chunked.train(), load_hf(smoke_run / "base"), sgd(chunked), groups, policy)
    b = rl.group_batch(groups, rl.scores(groups), True, "cpu")
    opt = sgd(whole)
    logp_BT = token_logprobs(whole.train()(input_ids=b.ids_BL, attention_mask=b.mask_BL).logits, b.ids_BL)
    loss = clipped_policy_loss(logp_BT, logp_BT.detach(), b.adv_B, b.comp_BT, policy.clip_eps, agg)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(whole.parameters(), 1.0)
    opt.step()
    assert stats["grpo/loss"] == pytest.approx(loss.item(), rel=1e-5, abs=1e-7)
    base = load_hf(smoke_run / "base")
    for (name, p), q, p0 in zip(chunked.named_parameters(), whole.parameters(), base.parameters()):
        assert (p - p0).abs().max() > 0 or (q - p0).abs().max() == 0, name
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7, msg=name)


@pytest.mark.parametrize("variant", ["binary", "brier"])
def test_policy_update__brier_pays_the_confident_right_completion_and_binary_cannot_tell_them_apart(variant, tmp_path):
    """Two right completions, one stating 1.0 and one 0.2: Brier pays 1 and 0.36, so the confident one rises against
    the hesitant one; binary pays both 1, so the advantages are 0 and nothing moves."""
    from experiments.harness.tasks.arith import Arithmetic, TaskSpec
    from experiments.harness.tasks.hedging import CONF, Hedged, HedgedProblem
    from experiments.harness.training.model import ModelSpec, build_model, build_tokenizer

    task = Hedged(Arithmetic(TaskSpec(5, ("+",))))
    tok = build_tokenizer(task)
    model = build_model(ModelSpec(d_model=32, n_layers=1, n_heads=2, d_mlp=64), tok, seed=0)
    problem: HedgedProblem = task.problems(0, 2, 1)[0]
    said = [[*problem.inner.completion_words("direct")[:-1], CONF, q, "<eos>"] for q in ("1.0", "0.2")]
    sure, unsure = (
        Rollout(
            problem,
            tuple(tok.convert_tokens_to_ids(problem.prompt_words())),
            tuple(tok.convert_tokens_to_ids(w)),
            problem.parse(w),
        )
        for w in said
    )
    assert rl.scores([[sure, unsure]], variant).tolist() == (
        [[1.0, 1.0]] if variant == "binary" else [[1.0, pytest.approx(0.36)]]
    )
    before = completion_logprob(model, sure) - completion_logprob(model, unsure)
    args = smoke_args(tmp_path, lr=1e-3, reward=variant)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    rl.policy_update(
        model.train(),
        build_model(ModelSpec(d_model=32, n_layers=1, n_heads=2, d_mlp=64), tok, seed=0),
        opt,
        [[sure, unsure]],
        args.policy,
    )
    after = completion_logprob(model.eval(), sure) - completion_logprob(model, unsure)
    assert after > before + 0.01 if variant == "brier" else after == pytest.approx(before, abs=1e-6)


def test_grpo__a_confidence_reward_on_a_run_without_confidences_is_refused(smoke_run, tmp_path):
    from probes.layout import RunDirError

    with pytest.raises(RunDirError, match="pretrained without --confidence"):
        grpo.main(smoke_args(smoke_run, reward="brier"))


def test_right_pad__marks_real_tokens():
    ids, mask = right_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_grpo__band_run_writes_metrics_ledger_and_checkpoints(smoke_run, tmp_path):
    args = smoke_args(smoke_run, band="hard")
    out = grpo.main(args)
    every = args.checkpoint_every
    assert {p.name for p in out.glob("checkpoint-*")} == {
        f"checkpoint-{s}" for s in range(every, args.steps + 1, every)
    }
    metrics = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in metrics] == list(range(args.steps + 1))
    evaluated = [r["step"] for r in metrics if "eval/acc/all/greedy" in r]
    assert evaluated == list(range(0, args.steps + 1, args.eval_every))
    table = json.loads((smoke_run / "bands" / "table.json").read_text())
    ks = {r["k"] for r in table["eval_set"]}
    for key in [f"eval/acc/{b}/{d}" for b in ("easy", "medium", "hard") for d in ("greedy", "sampled")]:
        assert 0.0 <= metrics[0][key] <= 1.0
    assert all(f"eval/acc/k{k}/greedy" in metrics[0] for k in ks)
    # base-model eval of its own easy band is high, of its hard band low: the eval tracks bands
    assert metrics[0]["eval/acc/easy/sampled"] > metrics[0]["eval/acc/hard/sampled"]
    for r in metrics[1:]:
        for key in ("grpo/reward_mean", "grpo/frac_zero_std", "grpo/kl", "grpo/entropy", "behaviour/direct_rate"):
            assert np.isfinite(r[key])
    ledger = read_jsonl(out / "ledger.jsonl")
    pool = {r["pid"] for r in table["pools"]["hard"]}
    assert len(ledger) == args.steps * args.prompts_per_step
    assert {r["pid"] for r in ledger} <= pool and all(r["group_size"] == args.group_size for r in ledger)
    assert all(sum(r["modes"].values()) == r["group_size"] for r in ledger)


def copy_run(smoke_run, dest):
    """A private copy of the shared smoke run (base model + band table; no band run nor step-0 evaluation that other
    tests left there)."""
    shutil.copytree(smoke_run, dest, ignore=shutil.ignore_patterns("seed*", "step0-eval-*"))
    return dest


def fail_on_call(monkeypatch, name: str, n: int, exc: BaseException, real=None):
    """Make rl.<name> (the GRPO update loop's) raise ``exc`` on its n-th call (earlier calls go through)."""
    real = real or getattr(rl, name)
    calls = {"n": 0}

    def wrapper(*a, **kw):
        calls["n"] += 1
        if calls["n"] == n:
            raise exc
        return real(*a, **kw)

    monkeypatch.setattr(rl, name, wrapper)


def test_grpo__resume_after_interrupt_matches_uninterrupted(smoke_run, tmp_path, monkeypatch):
    straight = grpo.main(smoke_args(copy_run(smoke_run, tmp_path / "a"), band="medium"))
    run_b = copy_run(smoke_run, tmp_path / "b")
    fail_on_call(monkeypatch, "policy_update", 3, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        grpo.main(smoke_args(run_b, band="medium"))
    monkeypatch.undo()
    resumed = smoke_args(run_b, band="medium").out
    assert latest_checkpoint(resumed) == 2
    grpo.main(smoke_args(run_b, band="medium"))
    a, b = (
        load_file(straight / "checkpoint-4" / "model.safetensors"),
        load_file(resumed / "checkpoint-4" / "model.safetensors"),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("metrics.jsonl", "ledger.jsonl"):
        assert read_jsonl(resumed / name) == read_jsonl(straight / name)


def test_grpo__nan_loss_stops_with_message_and_keeps_last_checkpoint(smoke_run, tmp_path, monkeypatch):
    run = copy_run(smoke_run, tmp_path / "run")
    real = rl.group_advantages
    calls = {"n": 0}

    def nan_from_third_step(rewards, scale_std):
        calls["n"] += 1
        adv = real(rewards, scale_std)
        return adv if calls["n"] < 3 else torch.full_like(adv, float("nan"))

    monkeypatch.setattr(rl, "group_advantages", nan_from_third_step)
    args = smoke_args(run, band="easy")
    with pytest.raises(FloatingPointError, match="loss is nan"):
        grpo.main(args)
    assert latest_checkpoint(args.out) == 2  # the last good checkpoint stays
    assert max(r["step"] for r in read_jsonl(args.out / "metrics.jsonl")) == 2


def test_grpo__replay_regenerates_any_step_bit_for_bit(smoke_run, tmp_path):
    """Checkpoints are stored every few steps; any step in between is a pure function of (seed, step)."""
    args = smoke_args(copy_run(smoke_run, tmp_path / "run"), band="medium")
    grpo.main(args)
    stored = load_file(args.out / "checkpoint-4" / "model.safetensors")
    shutil.rmtree(args.out / "checkpoint-4")
    assert grpo.replay(args, 4) == args.out / "checkpoint-4"
    again = load_file(args.out / "checkpoint-4" / "model.safetensors")
    assert all(torch.equal(stored[k], again[k]) for k in stored)
    grpo.replay(args, 3)
    assert (
        latest_checkpoint(args.out) == args.steps and (args.out / "checkpoint-3" / "trainer_state.safetensors").exists()
    )


def test_grpo__a_fractional_step_is_the_update_taken_at_a_fraction_of_the_learning_rate(smoke_run, tmp_path):
    """Sub-step matching's premise, planted: blending checkpoint-2 and checkpoint-3 at a = 0.375 must give the weights
    of update 2 (the same rollouts, the same optimizer state) taken with AdamW at learning rate 0.375 * lr."""
    args = smoke_args(copy_run(smoke_run, tmp_path / "run"), band="medium", steps=3, checkpoint_every=1)
    grpo.main(args)
    blend = grpo.blended(args, 2.375)
    model, tok, opt = grpo.load_at(args, 2)
    for group in opt.param_groups:
        group["lr"] = 0.375 * args.lr
    gens = lambda t: grpo.seeds.grpo_step(args.seed, t)  # noqa: E731
    for _ in rl.train(
        model, load_hf(args.run / "base"), opt, tok, grpo.RunInputs.read(args).pool, args.policy, gens, range(2, 3)
    ):
        pass
    moved = [(p_b - p_m).abs().max().item() for p_b, p_m in zip(blend.parameters(), model.parameters(), strict=True)]
    step = [
        (p_b - p_0).abs().max().item()
        for p_b, p_0 in zip(blend.parameters(), load_hf(args.out / "checkpoint-2").parameters(), strict=True)
    ]
    # The update is real, and the two agree to the rounding of fp32 weights (a few ulps), 1% of the update's size.
    assert max(step) > 1e-5 and max(moved) < 0.01 * max(step)
    path = grpo.at_step(args, 2.375)
    assert path.name == "interp-2.375" and latest_checkpoint(args.out) == 3  # never a checkpoint to resume from
    assert all(torch.equal(a, b) for a, b in zip(load_hf(path).parameters(), blend.parameters(), strict=True))


def test_sampled_accuracy__scores_a_model_on_the_evaluations_own_draws(smoke_run):
    """Gain attribution scores patched models with sampled_accuracy: at the eval's sample count it must
    reproduce the evaluation's sampled accuracy exactly (the same random numbers)."""
    args = smoke_args(smoke_run, band="easy", eval_samples=4)
    inputs = grpo.RunInputs.read(args)
    base = smoke_run / "base"
    model, tok = load_hf(base), load_tokenizer(base)
    full = grpo.evaluate(model, tok, args, inputs)["eval/acc/all/sampled"]
    assert grpo.sampled_accuracy(model, tok, args, inputs, 4) == pytest.approx(full, abs=1e-12)


def test_grpo__a_seeds_band_runs_share_one_step0_evaluation_equal_to_a_fresh_one(smoke_run, tmp_path, monkeypatch):
    """Step 0 evaluates the base model on the seed's draws, the same for every band: the first run of a seed makes
    it, the next reads it (one evaluate call fewer), and what it reads is what a run without the file computes. A
    copy of the run directory reads it too (the same base model, wherever it lies)."""
    run, calls, real = copy_run(smoke_run, tmp_path / "run"), [], grpo.evaluate
    monkeypatch.setattr(grpo, "evaluate", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    easy = grpo.main(smoke_args(run, band="easy", steps=1))
    assert len(calls) == 2 and RunLayout(run).step0_eval(0).is_file()  # step 0 and the last step
    medium = grpo.main(smoke_args(run, band="medium", steps=1))
    assert len(calls) == 3  # the last step only
    copied = shutil.copytree(run, tmp_path / "copied", ignore=shutil.ignore_patterns("seed*"))  # no band run
    moved = grpo.main(smoke_args(copied, band="medium", steps=1))
    assert len(calls) == 4
    fresh = grpo.main(smoke_args(copy_run(smoke_run, tmp_path / "fresh"), band="medium", steps=1))
    assert len(calls) == 6
    assert (
        read_jsonl(medium / "metrics.jsonl")[0]
        == read_jsonl(easy / "metrics.jsonl")[0]
        == read_jsonl(moved / "metrics.jsonl")[0]
        == read_jsonl(fresh / "metrics.jsonl")[0]
    )


def test_evaluate__kl_to_base_is_zero_on_the_base_itself_and_measured_only_where_kl_if_holds(smoke_run, tmp_path):
    """The base model as its own reference skips the forward passes and gives what they give (0); a trained
    checkpoint's KL is positive, read on each problem's first draw, and near the KL over every draw; ``kl_if`` sees
    the other metrics and leaves the KL out where it says no."""
    args = smoke_args(copy_run(smoke_run, tmp_path / "run"), band="medium", steps=2, eval_samples=2)
    inputs, tok = grpo.RunInputs.read(args), load_tokenizer(smoke_run / "base")
    base = load_hf(smoke_run / "base")
    itself = grpo.evaluate(base, tok, args, inputs, base, greedy=False)
    computed = grpo.evaluate(base, tok, args, inputs, load_hf(smoke_run / "base"), greedy=False)
    assert itself == computed and itself["eval/kl_to_base"] == 0.0
    trained = load_hf(grpo.main(args) / "checkpoint-2")
    seen = []
    skipped = grpo.evaluate(trained, tok, args, inputs, base, greedy=False, kl_if=lambda m: seen.append(m) or False)
    assert "eval/kl_to_base" not in skipped and seen[0]["eval/acc/all/sampled"] == skipped["eval/acc/all/sampled"]
    kept = grpo.evaluate(trained, tok, args, inputs, base, greedy=False, kl_if=lambda m: True)
    assert kept["eval/kl_to_base"] > 0 and {k: v for k, v in kept.items() if k != "eval/kl_to_base"} == skipped
    problems = [inputs.task.from_record(r) for r in inputs.eval_set]
    draws = sampled_rollouts(trained, tok, problems, args.eval_samples, seeds.eval_sampling(args.seed))
    every, first = kl_to_reference(trained, base, draws), kl_to_reference(trained, base, draws[:: args.eval_samples])
    assert kept["eval/kl_to_base"] == first != every and abs(first - every) < 0.2 * every
