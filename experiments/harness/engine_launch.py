"""Launch files an export writes: a TRL ``GRPOTrainer`` script and a verl ``main_ppo`` command line, carrying
bandlens's GRPO settings (``experiments.grpo``) and the export's paths."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Launch:
    """What the launch files set: bandlens's GRPO hyperparameters, as each engine spells them."""

    run: str
    """The run the export came from (named in the files' headers)."""
    bands: tuple[str, ...]
    steps: int
    prompts_per_step: int
    group_size: int
    lr: float
    clip_eps: float
    checkpoint_every: int
    seed: int
    max_prompt_length: int
    max_completion_length: int


_TRL_SCRIPT = '''"""GRPO with TRL on one band of bandlens run {run}: ``python trl_grpo.py BAND [--seed S] [--output-dir DIR]``.

Written by ``experiments.export``. The settings mirror bandlens's GRPO (``experiments.grpo``): {steps} updates of
{prompts_per_step} prompts x {group_size} completions at T = 1 (one generation batch per update, one gradient step per
batch), AdamW at lr {lr} with no weight decay and a constant schedule, gradient norm clipped at 1, ratio clip
{clip_eps}, no KL term (beta 0), group-centred rewards divided by the group std (scale_rewards "group"), token-mean
loss (loss_type "dapo"), fp32. The completion limit ({max_completion_length} tokens) is the one bandlens_task.json
records: the reward reads a completion that long without <eos> as cut short. On several processes divide
per_device_train_batch_size by their number. Checkpoints: <output-dir>/checkpoint-<step>/; sampled completions:
<output-dir>/completions/.
"""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BANDS = {bands!r}


def main() -> None:
    parser = argparse.ArgumentParser(description="TRL GRPO on one bandlens band")
    parser.add_argument("band", choices=BANDS)
    parser.add_argument("--seed", type=int, default={seed})
    parser.add_argument("--output-dir", type=Path, default=None, help="default: trl_runs/<band>/seed<seed> beside this file")
    args = parser.parse_args()
    out = args.output_dir or HERE / "trl_runs" / args.band / f"seed{{args.seed}}"

    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    sys.path.insert(0, str(HERE))
    import reward_trl

    data = load_dataset("json", data_files={{"train": str(HERE / "trl" / f"train_{{args.band}}.jsonl")}})["train"]
    tokenizer = AutoTokenizer.from_pretrained(HERE / "model")
    config = GRPOConfig(
        output_dir=str(out),
        seed=args.seed,
        max_steps={steps},
        per_device_train_batch_size={batch},
        gradient_accumulation_steps=1,
        num_generations={group_size},
        num_iterations=1,
        temperature=1.0,
        max_completion_length={max_completion_length},
        learning_rate={lr},
        weight_decay=0.0,
        lr_scheduler_type="constant",
        max_grad_norm=1.0,
        beta=0.0,
        epsilon={clip_eps},
        scale_rewards="group",
        loss_type="dapo",
        bf16=False,
        gradient_checkpointing=False,
        logging_steps=1,
        save_strategy="steps",
        save_steps={checkpoint_every},
        log_completions=True,
        report_to="none",
    )
    trainer = GRPOTrainer(
        model=str(HERE / "model"),
        reward_funcs=reward_trl.reward,
        args=config,
        train_dataset=data,
        processing_class=tokenizer,
    )
    trainer.train()


if __name__ == "__main__":
    main()
'''

_VERL_SCRIPT = """#!/usr/bin/env bash
# GRPO with verl on one band of bandlens run {run}: bash verl_grpo.sh BAND [key=value overrides...]
#
# Written by experiments.export. The settings mirror bandlens's GRPO (experiments.grpo): {steps} updates of
# {prompts_per_step} prompts x {group_size} completions at T = 1, one gradient step per batch, AdamW at lr {lr} with no
# weight decay, ratio clip {clip_eps}, no KL term, group-normalised advantages, token-mean loss. The response limit
# ({max_completion_length} tokens) is the one bandlens_task.json records: the reward reads a response that long as cut
# short. Set the GPU count with trainer.n_gpus_per_node=N.
#
# Checkpoints: verl_runs/BAND/checkpoints/global_step_N/actor/ (sharded). Merge one into an HF model dir with
#   python -m verl.model_merger merge --backend fsdp \\
#     --local_dir verl_runs/BAND/checkpoints/global_step_N/actor --target_dir verl_runs/BAND/checkpoints/global_step_N/actor/huggingface
# then: python -m experiments.ingest --engine verl --path verl_runs/BAND/checkpoints --logs verl_runs/BAND/rollouts ...
# Rollouts: verl_runs/BAND/rollouts/ (one JSON line per response per step).
set -euo pipefail
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
BAND="${{1:?usage: verl_grpo.sh BAND [overrides...] with BAND one of: {bands_words}}}"
shift
case "$BAND" in
  {bands_case}) ;;
  *) echo "error: band must be one of: {bands_words}" >&2; exit 2 ;;
esac
RUN_DIR="$HERE/verl_runs/$BAND"

python -m verl.trainer.main_ppo \\
  algorithm.adv_estimator=grpo \\
  algorithm.norm_adv_by_std_in_grpo=True \\
  algorithm.use_kl_in_reward=False \\
  data.train_files="$HERE/verl/train_$BAND.parquet" \\
  data.val_files="$HERE/verl/eval.parquet" \\
  data.train_batch_size={prompts_per_step} \\
  data.max_prompt_length={max_prompt_length} \\
  data.max_response_length={max_completion_length} \\
  data.filter_overlong_prompts=False \\
  data.truncation=error \\
  data.seed={seed} \\
  actor_rollout_ref.model.path="$HERE/model" \\
  actor_rollout_ref.actor.optim.lr={lr} \\
  actor_rollout_ref.actor.optim.weight_decay=0.0 \\
  actor_rollout_ref.actor.optim.clip_grad=1.0 \\
  actor_rollout_ref.actor.ppo_mini_batch_size={prompts_per_step} \\
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={batch} \\
  actor_rollout_ref.actor.ppo_epochs=1 \\
  actor_rollout_ref.actor.clip_ratio_low={clip_eps} \\
  actor_rollout_ref.actor.clip_ratio_high={clip_eps} \\
  actor_rollout_ref.actor.loss_agg_mode=token-mean \\
  actor_rollout_ref.actor.use_kl_loss=False \\
  actor_rollout_ref.actor.entropy_coeff=0 \\
  actor_rollout_ref.rollout.name=vllm \\
  actor_rollout_ref.rollout.n={group_size} \\
  actor_rollout_ref.rollout.temperature=1.0 \\
  actor_rollout_ref.rollout.tensor_model_parallel_size=1 \\
  actor_rollout_ref.rollout.gpu_memory_utilization=0.3 \\
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={batch} \\
  actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={batch} \\
  reward.custom_reward_function.path="$HERE/reward_verl.py" \\
  reward.custom_reward_function.name=compute_score \\
  trainer.total_training_steps={steps} \\
  trainer.save_freq={checkpoint_every} \\
  trainer.test_freq=-1 \\
  trainer.val_before_train=False \\
  trainer.n_gpus_per_node=1 \\
  trainer.nnodes=1 \\
  trainer.logger='["console"]' \\
  trainer.project_name=bandlens \\
  trainer.experiment_name="$BAND-seed{seed}" \\
  trainer.default_local_dir="$RUN_DIR/checkpoints" \\
  trainer.rollout_data_dir="$RUN_DIR/rollouts" \\
  "$@"
"""


def _fields(launch: Launch) -> dict[str, Any]:
    return {**dataclasses.asdict(launch), "batch": launch.prompts_per_step * launch.group_size}


def trl_script(launch: Launch) -> str:
    """``trl_grpo.py``: a runnable TRL GRPO script for one band (chosen on its command line)."""
    return _TRL_SCRIPT.format(**{**_fields(launch), "bands": list(launch.bands)})


def verl_script(launch: Launch) -> str:
    """``verl_grpo.sh``: verl's ``main_ppo`` command line for one band, the model merger in a comment."""
    return _VERL_SCRIPT.format(**_fields(launch), bands_words=" ".join(launch.bands), bands_case="|".join(launch.bands))
