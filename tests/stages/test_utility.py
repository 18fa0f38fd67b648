"""The utility study end to end on a smoke run pretrained with an abstain word, and its readers."""

import json

import numpy as np
import pytest
import torch

from experiments import utility
from experiments.analysis.utility_results import UtilityResult
from experiments.harness.cli import preset_args
from experiments.harness.reading.labelling import split_problems
from experiments.harness.rundir import write_json
from experiments.harness.studies.post_hoc import answer_probability, computation_probe
from experiments.harness.tasks.hedging import ABSTAIN, CONF
from experiments.harness.tasks.registry import run_task
from experiments.harness.training import rl
from experiments.harness.training.rl_loss import token_logprobs
from experiments.harness.training.rollout import Rollout
from probes.layout import RunDirError, RunLayout
from probes.models import load_bridge, load_hf, load_tokenizer


def test_utility__smoke_trains_both_arms_and_reports_utility_and_features(signals_run, monkeypatch, tmp_path):
    args = preset_args(utility.UtilityArgs, utility.PRESETS, "smoke", run=signals_run)
    res = utility.main(args)
    out = RunLayout(signals_run).utility(args.band)
    on_disk = json.loads(out.results.read_text())
    assert on_disk["verdict"] == res.verdict
    write_json(tmp_path / "again.json", UtilityResult.from_json(on_disk).to_json())  # read back, written again
    assert (tmp_path / "again.json").read_bytes() == out.results.read_bytes()
    for table in res.splits.values():
        assert list(table)[0] == "direct (utility reward)" and len(table) == 4
        for row in table.values():
            assert -3 <= row["utility"]["mean"] <= 1 and 0 <= row["answer_rate"]["mean"] <= 1
    assert set(res.features) >= {"computation probe accuracy"} and len(res.thresholds_fitted) == len(args.seeds)
    for arm, reward in utility.ARMS.items():
        stages = json.loads(RunLayout(signals_run).config.read_text())["stages"]
        assert stages[args.grpo_args(arm, 0).stage]["reward"] == reward
    assert (out.figures / "utility.png").stat().st_size > 1000 and res.verdict in out.report.read_text()
    monkeypatch.setattr(rl, "policy_update", lambda *a: pytest.fail("retrained a run"))
    assert json.dumps(utility.main(args).splits) == json.dumps(res.splits)  # resumed (nan-safe comparison)


def test_utility__refuses_a_run_without_an_abstain_word(smoke_run):
    with pytest.raises(RunDirError, match="without --abstain-frac"):
        utility.main(preset_args(utility.UtilityArgs, utility.PRESETS, "smoke", run=smoke_run))


def test_answer_probability__is_the_models_probability_of_its_answer_tokens_and_nan_without_one(signals_run):
    model, tok = load_hf(signals_run / "base"), load_tokenizer(signals_run / "base")
    pr = run_task(signals_run).problems(0, 2, 1)[0]
    prompt = tok.convert_tokens_to_ids(pr.prompt_words())
    made = []
    for words in ([*pr.inner.completion_words("deliberate")[:-1], CONF, "0.3", "<eos>"], [ABSTAIN, "<eos>"]):
        made.append(Rollout(pr, tuple(prompt), tuple(tok.convert_tokens_to_ids(words)), pr.parse(words)))
    p = answer_probability(model, tok, made)
    ids = torch.tensor([list(made[0].prompt_ids) + list(made[0].completion_ids)])
    with torch.no_grad():
        logp = token_logprobs(model(input_ids=ids).logits, ids)[0]
    answer_at = len(prompt) + made[0].completion_ids.index(tok.convert_tokens_to_ids("</think>")) + 1  # after the trace
    assert p[0] == pytest.approx(float(logp[answer_at - 1].exp()), rel=1e-5) and np.isnan(p[1])


def test_computation_probe__a_trained_model_carries_its_running_results(smoke_run):
    task = run_task(smoke_run)
    train, test = split_problems(0, task.knobs(3), 12, task)
    base = smoke_run / "base"
    res = computation_probe(load_bridge(base), load_tokenizer(base), "blocks.1.hook_resid_post", train, test)
    assert res.n_test > 20 and res.accuracy > res.shuffled_accuracy + 0.2
