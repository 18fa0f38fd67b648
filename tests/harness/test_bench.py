import pytest
import torch
from transformers import LlamaConfig, Qwen2Config

from experiments import bench
from experiments.harness.executors import usable_cpus


@pytest.fixture(scope="module")
def smoke_result() -> dict[str, float]:
    return bench.main(bench.BenchArgs(**bench.PRESETS["smoke"]))


def test_flops_per_token__counts_gqa_projections_gated_mlp_unembedding_and_attention_by_hand():
    config = LlamaConfig(
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=2,
        vocab_size=10,
    )
    # multiply-adds per layer: q 8·(4·2) = 64, k 8·(2·2) = 32, v 32, o (4·2)·8 = 64, MLP 3·8·16 = 384: 576,
    # so 1152 FLOPs; two layers 2304, unembedding 2·8·10 = 160
    assert bench.flops_per_token(config) == 2304 + 160
    # attention over 5 positions: 2·2·5·(4·2) = 160 FLOPs per layer, 320 for two
    assert bench.flops_per_token(config, context=5) == 2304 + 160 + 320


def test_flops_per_token__head_dim_defaults_to_d_model_over_heads_in_qwen2():
    config = Qwen2Config(
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=1,
        vocab_size=10,
    )
    # head_dim 2: q 64, k 8·2 = 16, v 16, o 64, MLP 384 -> 544 multiply-adds, 1088 FLOPs; unembedding 160
    assert bench.flops_per_token(config) == 1088 + 160


def test_matmul_gflops__positive_on_the_current_thread_count():
    assert torch.get_num_threads() == 1  # tests pin one thread (conftest)
    assert bench.matmul_gflops([(4, 16, 32), (4, 16, 16)], repeats=2, min_seconds=0.01) > 0


def test_bench__all_three_samplers_produce_the_naive_tokens(smoke_result):
    # TL generate's cached path through a bridge breaks when transformers renames its
    # cache kwarg (5.24): this is the check that the pinned stack still agrees.
    for name in ("cached", "naive", "tl_generate"):
        assert smoke_result[f"bench/{name}_tok_s"] > 0
        assert smoke_result[f"bench/{name}_matches_naive"] == 1.0


def test_bench__returns_rates_flops_and_fractions_of_matmul_that_agree(smoke_result):
    r = smoke_result
    rows = {f"sample/{name}_": r["sample/flops_per_token"] for name in ("cached", "naive", "tl_generate")}
    rows["train/"] = r["train/flops_per_token"]
    assert all(isinstance(v, float) and v > 0 for v in r.values())
    assert r["flops_per_token"] < r["sample/flops_per_token"] < r["train/flops_per_token"]
    assert r["train/flops_per_token"] > 3 * r["flops_per_token"]  # 3x forward, plus attention
    for prefix, per_token in rows.items():
        gflops = r[f"{prefix}tok_s"] * per_token / 1e9
        assert r[f"{prefix}gflops"] == pytest.approx(gflops)
        assert r[f"{prefix}frac"] == pytest.approx(gflops / r["matmul_gflops"])
        assert 0 < r[f"{prefix}frac"] < 10  # above 1 only if the matmul estimate is off
    assert r["sample/cached_tok_s"] == r["bench/cached_tok_s"]
    assert r["sample/cached_over_tl_generate"] == pytest.approx(r["bench/cached_tok_s"] / r["bench/tl_generate_tok_s"])


def test_bench__ragged_work_ratios_are_measured(smoke_result):
    ratios = ("eval/rows_leave_over_stay", "train/chunked_over_whole", "grpo/chunked_over_whole")
    assert all(smoke_result[k] > 0 for k in ratios)
    shared = [v for k, v in smoke_result.items() if k.endswith("_processes_over_1")]
    assert (len(shared) == 1 and shared[0] > 0) if usable_cpus() > 1 else not shared
