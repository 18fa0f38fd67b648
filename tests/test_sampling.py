import torch

from experiments import bench
from experiments.model import ModelSpec, build_model, build_tokenizer
from experiments.sampling import sample
from experiments.task import TaskSpec, generate_problems, prompt_words


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
    out = sample(model, prompts, max_new=8, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, generator=gen, banned_first=[think])
    assert all(seq[0] != think for seq in out)
    assert all(tok.eos_token_id not in seq[:-1] and len(seq) <= 8 for seq in out)


def test_bench__smoke_reports_all_three_samplers():
    result = bench.main(bench.BenchArgs(**bench.PRESETS["smoke"]))
    assert set(result) == {"bench/cached_tok_s", "bench/naive_tok_s", "bench/tl_generate_tok_s"}
    assert all(v > 0 for v in result.values())
