"""Launch files an export writes: a TRL ``GRPOTrainer`` script and a verl ``main_ppo`` command line, carrying
bandlens's GRPO settings (``experiments.grpo``) and the export's paths."""

from __future__ import annotations

import dataclasses
import json
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


_TRL_SCRIPT = '''"""GRPO with TRL on one band of bandlens run {run}:

    python trl_grpo.py --band BAND [--seed S] [--output_dir DIR] [any GRPOConfig flag, e.g. --max_steps 2]

Written by ``experiments.export``. The flags follow TRL's convention: ``TrlParser`` reads this script's own
(``ScriptArguments``: --band, --dry_run) and one per ``GRPOConfig`` field (``--help`` lists them); ``--config
FILE.yaml`` sets any of them and the command line overrides the file. Their defaults (``GRPO_DEFAULTS``) are
bandlens's GRPO settings (``experiments.grpo``): {steps} updates of {prompts_per_step} prompts x {group_size}
completions at T = 1 (one generation batch per update, one gradient step per batch), AdamW at lr {lr} with no weight
decay and a constant schedule, gradient norm clipped at 1, ratio clip {clip_eps}, no KL term (beta 0), group-centred
rewards divided by the group std (scale_rewards "group"), token-mean loss (loss_type "dapo"), fp32. The completion
limit ({max_completion_length} tokens) is the one bandlens_task.json records: the reward reads a completion that long
without <eos> as cut short. per_device_train_batch_size is prompts x completions per update ({batch}); on several
processes divide it by their number. Checkpoints: <output_dir>/checkpoint-<step>/; sampled completions:
<output_dir>/completions/. output_dir defaults to trl_runs/{{band}}/seed{{seed}} beside this file; {{band}} and
{{seed}} in a given one are filled in too. ``--dry_run`` prints the GRPOConfig as JSON and exits without training.
"""

import dataclasses
import sys
from pathlib import Path

try:
    from trl import GRPOConfig, TrlParser
except ImportError as e:
    sys.exit(f"trl_grpo.py needs TRL, e.g. pip install trl==1.16.0 (the version bandlens tests): {{e}}")

HERE = Path(__file__).resolve().parent
BANDS = {bands}

# bandlens's GRPO settings as GRPOConfig spells them: the defaults of its flags ({{band}} and {{seed}} in output_dir are
# filled in after parsing).
GRPO_DEFAULTS = dict(
    output_dir=str(HERE / "trl_runs" / "{{band}}" / "seed{{seed}}"),
    seed={seed},
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


@dataclasses.dataclass
class ScriptArguments:
    band: str = dataclasses.field(metadata={{"choices": BANDS, "help": "required: train on trl/train_<band>.jsonl"}})
    dry_run: bool = dataclasses.field(default=False, metadata={{"help": "print the GRPOConfig as JSON and exit"}})


def parse_args(argv: list[str] | None = None) -> tuple[ScriptArguments, GRPOConfig]:
    """This script's arguments and the GRPOConfig it trains with, from ``argv`` (default: the command line)."""
    description = "GRPO with TRL on one band of a bandlens export. --config FILE.yaml sets any flag below."
    parser = TrlParser((ScriptArguments, GRPOConfig), description=description)
    unknown = parser.set_defaults_with_config(**GRPO_DEFAULTS)
    if unknown:
        raise RuntimeError(f"this TRL's GRPOConfig has no field for {{unknown[::2]}}")
    script_args, config = parser.parse_args_and_config(argv)
    config.output_dir = config.output_dir.replace("{{band}}", script_args.band).replace("{{seed}}", str(config.seed))
    return script_args, config


def main() -> None:
    script_args, config = parse_args()
    if script_args.dry_run:
        print(config.to_json_string())
        return

    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    sys.path.insert(0, str(HERE))
    import reward_trl

    train_file = HERE / "trl" / f"train_{{script_args.band}}.jsonl"
    data = load_dataset("json", data_files={{"train": str(train_file)}})["train"]
    trainer = GRPOTrainer(
        model=str(HERE / "model"),
        reward_funcs=reward_trl.reward,
        args=config,
        train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(HERE / "model"),
    )
    trainer.train()


if __name__ == "__main__":
    main()
'''

_VERL_SCRIPT = (
    """#!/usr/bin/env bash
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
#     --local_dir verl_runs/BAND/checkpoints/global_step_N/actor """
    """--target_dir verl_runs/BAND/checkpoints/global_step_N/actor/huggingface
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
)


def _fields(launch: Launch) -> dict[str, Any]:
    return {**dataclasses.asdict(launch), "batch": launch.prompts_per_step * launch.group_size}


def trl_script(launch: Launch) -> str:
    """``trl_grpo.py``: a runnable TRL GRPO script for one band. Its flags are TrlParser's: every GRPOConfig field,
    bandlens's settings as the defaults, plus ``--band`` and ``--dry_run``."""
    return _TRL_SCRIPT.format(**{**_fields(launch), "bands": json.dumps(list(launch.bands))})


def verl_script(launch: Launch) -> str:
    """``verl_grpo.sh``: verl's ``main_ppo`` command line for one band, the model merger in a comment."""
    return _VERL_SCRIPT.format(**_fields(launch), bands_words=" ".join(launch.bands), bands_case="|".join(launch.bands))
