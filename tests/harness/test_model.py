import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments.harness.tasks.arith import TaskSpec, completion_words, generate_problems, prompt_words
from experiments.harness.training.model import ModelSpec, build_model, build_tokenizer, save_model
from probes.models import CheckpointError, load_bridge, load_hf, load_tokenizer

SPEC = TaskSpec()


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def model_dir(request, tmp_path_factory) -> Path:
    tok = build_tokenizer(SPEC)
    model = build_model(ModelSpec(arch=request.param, d_model=32, n_layers=2, n_heads=2, d_mlp=64), tok, seed=0)
    out = tmp_path_factory.mktemp(request.param) / "ckpt"
    save_model(model, tok, out, meta={"note": "test"})
    return out


def test_tokenizer__round_trip_of_every_word():
    tok = build_tokenizer(SPEC)
    assert tok.convert_ids_to_tokens(list(range(len(SPEC.vocab)))) == list(SPEC.vocab)
    pr = generate_problems(0, 4, 1, SPEC)[0]
    words = prompt_words(pr) + completion_words(pr, "deliberate")
    ids = tok(" ".join(words), add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == words
    assert tok.decode(ids).split() == words
    assert tok.convert_tokens_to_ids(["bogus"]) == [tok.unk_token_id]


def test_save__writes_safetensors_and_tokenizer_only(model_dir):
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    assert json.loads((model_dir / "bandlens.json").read_text()) == {"note": "test"}


def test_load__transformers_and_bridge_give_identical_logits(model_dir):
    x = torch.randint(4, len(SPEC.vocab), (3, 17))
    hf = load_hf(model_dir)
    bridge = load_bridge(model_dir)
    with torch.no_grad():
        hf_out = hf(x, output_hidden_states=True)
        bridge_logits, cache = bridge.run_with_cache(x, names_filter=lambda n: n == "blocks.0.hook_resid_post")
    torch.testing.assert_close(bridge_logits, hf_out.logits, atol=1e-5, rtol=1e-5)
    # hook names read the HF model's own residual stream (hidden_states[i+1] is after block i; the last one is after
    # the final norm)
    torch.testing.assert_close(cache["blocks.0.hook_resid_post"], hf_out.hidden_states[1], atol=1e-5, rtol=1e-5)


def test_load__fresh_process_with_no_network(model_dir):
    code = (
        "import sys, torch; from probes.models import load_bridge, load_hf;"
        f"d = {str(model_dir)!r}; x = torch.tensor([[1, 5, 7, 4]]);"
        "a = load_hf(d)(x).logits; b = load_bridge(d)(x);"
        "sys.exit(0 if torch.allclose(a, b, atol=1e-5) else 1)"
    )
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "NO_PROXY": "*", "HTTPS_PROXY": "http://127.0.0.1:9"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_load__missing_weights_name_the_file(tmp_path, model_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((model_dir / "config.json").read_text())
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        load_hf(broken)
    with pytest.raises(CheckpointError, match="missing"):
        load_tokenizer(tmp_path)
