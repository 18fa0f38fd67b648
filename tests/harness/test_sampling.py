import torch

from experiments import bench
from experiments.harness.tasks.arith import TaskSpec, generate_problems, prompt_words
from experiments.harness.training.model import ModelSpec, build_model, build_tokenizer, save_model
from experiments.harness.training.rollout import max_new_tokens, rollouts
from experiments.harness.training.sampling import sample
from probes.models import load_bridge, load_hf


def test_sample__greedy_with_kv_cache_equals_full_recompute_on_ragged_prompts():
    tok = build_tokenizer(TaskSpec())
    model = build_model(ModelSpec(d_model=32, n_layers=2, n_heads=2, d_mlp=64), tok, seed=3).eval()
    problems = [pr for k in (1, 3, 6) for pr in generate_problems(0, k, 3, TaskSpec())]
    prompts = [tok.convert_tokens_to_ids(prompt_words(pr)) for pr in problems]
    cached = sample(model, prompts, max_new=12, eos_id=-1, pad_id=tok.pad_token_id, temperature=0)
    naive = bench.naive_sample(model, prompts, 12, tok.pad_token_id)[:, -12:].tolist()
    assert cached == naive


def test_sample__stops_at_eos_and_bans_first_tokens():
    tok = build_tokenizer(TaskSpec())
    model = build_model(ModelSpec(d_model=32, n_layers=2, n_heads=2, d_mlp=64), tok, seed=0).eval()
    prompts = [tok.convert_tokens_to_ids(prompt_words(pr)) for pr in generate_problems(0, 2, 16, TaskSpec())]
    gen = torch.Generator().manual_seed(0)
    think = tok.convert_tokens_to_ids("<think>")
    out = sample(
        model, prompts, max_new=8, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, generator=gen, banned_first=[think]
    )
    assert all(seq[0] != think for seq in out)
    assert all(tok.eos_token_id not in seq[:-1] and len(seq) <= 8 for seq in out)


def test_sample__on_a_bridged_model_runs_hooks_on_every_token(tmp_path):
    tok = build_tokenizer(TaskSpec())
    save_model(build_model(ModelSpec(d_model=32, n_layers=2, n_heads=2, d_mlp=64), tok, seed=1), tok, tmp_path / "m")
    bridge = load_bridge(tmp_path / "m")
    prompts = [tok.convert_tokens_to_ids(prompt_words(pr)) for pr in generate_problems(0, 3, 4, TaskSpec())]
    plain = sample(load_hf(tmp_path / "m"), prompts, max_new=6, eos_id=-1, pad_id=tok.pad_token_id, temperature=0)
    assert sample(bridge.original_model, prompts, max_new=6, eos_id=-1, pad_id=tok.pad_token_id, temperature=0) == plain
    seen = []
    with bridge.hooks(fwd_hooks=[("blocks.0.hook_resid_post", lambda x, hook: seen.append(x.shape[1]) or x * 0)]):
        ablated = sample(bridge.original_model, prompts, max_new=6, eos_id=-1, pad_id=tok.pad_token_id, temperature=0)
    assert seen == [9] + [1] * 5  # the 9-token prompt once, then one new token per step (KV cache in use)
    assert ablated != plain


def test_sample__finished_rows_leave_the_batch_and_the_others_keep_their_tokens():
    """With per-row uniforms a row's completion is the one it gets sampled alone, while the rows that finished
    leave the batch (the model sees fewer rows); a shared generator keeps every row to the end."""
    tok = build_tokenizer(TaskSpec())
    model = build_model(ModelSpec(d_model=32, n_layers=2, n_heads=2, d_mlp=64), tok, seed=2).eval()
    prompts = [
        tok.convert_tokens_to_ids(prompt_words(pr)) for k in (1, 4) for pr in generate_problems(0, k, 8, TaskSpec())
    ]
    uniforms = torch.rand(len(prompts), 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    eos = tok.convert_tokens_to_ids("3")  # a frequent token of the untrained model stands in for <eos>
    rows: list[int] = []
    model.register_forward_pre_hook(lambda m, args, kwargs: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    together = sample(model, prompts, max_new=10, eos_id=eos, pad_id=tok.pad_token_id, uniforms_BT=uniforms)
    shrank = min(rows)
    alone = [
        sample(model, [p], max_new=10, eos_id=eos, pad_id=tok.pad_token_id, uniforms_BT=u[None])[0]
        for p, u in zip(prompts, uniforms)
    ]
    assert together == alone and len({len(c) for c in together}) > 1 and shrank < len(prompts)
    rows.clear()
    sample(model, prompts, max_new=10, eos_id=eos, pad_id=tok.pad_token_id, generator=torch.Generator().manual_seed(0))
    assert set(rows) == {len(prompts)}


def test_rollouts__a_completion_gets_its_own_problems_room_whatever_shares_its_batch():
    """Greedy rows are their own (finished rows leave), and each is cut at its own problem's room: batches of 2 or
    one batch of every k give the same rollouts, though an untrained model wanders to the end of every batch."""
    tok = build_tokenizer(TaskSpec())
    model = build_model(ModelSpec(d_model=32, n_layers=2, n_heads=2, d_mlp=64), tok, seed=3).eval()
    problems = [pr for k in (1, 4, 7) for pr in generate_problems(0, k, 2, TaskSpec())]
    alone, together = (
        rollouts(model, tok, problems, mode="deliberate", temperature=0.0, batch_size=n) for n in (2, len(problems))
    )
    assert [r.completion_ids for r in alone] == [r.completion_ids for r in together]
    assert [len(r.completion_ids) for r in alone] == [max_new_tokens([pr]) for pr in problems]  # none ended
