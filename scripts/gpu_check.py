"""The GPU check: a reduced band study on one device, with per-stage wall times, GPU utilization samples
and peak GPU memory, written to OUT/gpu_check.json and printed.

    python scripts/gpu_check.py [--out gpu_check] [--device cuda] [--preset gpu] [--seeds 0] [--grpo-steps 20]

By default the gpu preset with 1 seed x 3 bands and 20 GRPO updates per run. First, in the same process,
it times the preset's pretraining loop and GRPO sampling with and without each speed-up (batches built by
worker processes, bf16 autocast, wide rollout batches) and prints the ratios. Nothing is downloaded:
transformer-lens, sae-lens and what they need must be installed already (from local wheels where the
machine has no network; README, "GPU"). Where no GPU exists, ``--device cpu --preset smoke`` runs the
same path with no utilization samples. Utilization comes from ``nvidia-smi`` every ``--every`` seconds
(the share of time a kernel ran: a launch-bound model can read high while the GPU's cores idle).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from experiments import band_study, grpo, pretrain  # noqa: E402
from experiments.harness.cli import preset_args  # noqa: E402
from experiments.harness.seeds import grpo_step  # noqa: E402
from experiments.harness.training import rl  # noqa: E402
from experiments.harness.training.model import build_tokenizer  # noqa: E402
from experiments.harness.training.supervised import fit  # noqa: E402

STAGE = re.compile(r"^\[band_study\s+(\d+) s\] (.*)$")


class Tee(io.TextIOBase):
    """stdout that is also kept, to read the study's stage lines back."""

    def __init__(self, out):
        self.out, self.lines = out, []

    def write(self, s: str) -> int:
        self.lines.append(s)
        return self.out.write(s)

    def flush(self) -> None:
        self.out.flush()


def stages(text: str, total: float) -> list[dict]:
    """Each stage line's start, and its duration up to the next (the last up to the end)."""
    marks = [(int(m[1]), m[2]) for line in text.splitlines() if (m := STAGE.match(line.strip()))]
    ends = [t for t, _ in marks[1:]] + [round(total)]
    return [{"stage": name, "start_s": t, "seconds": end - t} for (t, name), end in zip(marks, ends)]


def utilization(path: Path, t0: float) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        parts = [p.strip() for p in line.split(",")]
        with contextlib.suppress(ValueError, IndexError):
            rows.append(
                {"t_s": round(float(parts[0]) - t0, 1), "util_pct": float(parts[1]), "mem_mib": float(parts[2])}
            )
    return rows


def timed(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t


def throughput(preset: str, device: str, steps: int) -> list[dict]:
    """Pretraining steps/s and GRPO sampling time at the preset's sizes: the plain loop against each speed-up,
    measured one after another in this process (ratios, not absolute times, are what carry between hosts)."""
    base = preset_args(pretrain.PretrainArgs, pretrain.PRESETS, preset, device=device)
    tokenizer = build_tokenizer(base.family)
    vocab, rows = tokenizer.get_vocab(), []

    def pretrain_seconds(precision: str, workers: int) -> float:
        recipe = dataclasses.replace(base, precision=precision).recipe
        model, opt = recipe.init(tokenizer)
        fit(model, opt, recipe, vocab, range(20), workers=workers, desc="warm-up")
        return timed(
            lambda: fit(model, opt, recipe, vocab, range(20, 20 + steps), workers=workers, desc="timed"), device
        )

    for precision, workers in (("fp32", 0), ("fp32", 4), (base.precision, base.batch_workers)):
        s = pretrain_seconds(precision, workers)
        rows.append(
            {"what": f"pretrain {precision}, {workers} batch workers", "per_s": round(steps / s, 1), "unit": "steps/s"}
        )
    g = preset_args(grpo.GRPOArgs, grpo.PRESETS, preset, device=device)
    pool = base.family.problems(0, base.family.knobs(base.k_train_max)[-1], g.prompts_per_step)
    model = base.recipe.init(tokenizer)[0]
    for batch in sorted({64, g.rollout_batch}):
        spec = dataclasses.replace(g.policy, rollout_batch=batch)
        s = timed(lambda spec=spec: rl.sample_groups(model.eval(), tokenizer, pool, spec, *grpo_step(0, 0)), device)
        rows.append(
            {
                "what": f"GRPO sampling {spec.prompts_per_step} x {spec.group_size}, rollout batch {batch}",
                "per_s": round(1 / s, 2),
                "unit": "updates/s",
            }
        )
    print(f"\n{'speed-up (same process, one after another)':<60} {'rate':>10}  ratio")
    for row in rows:
        first = next(r for r in rows if r["unit"] == row["unit"])
        row["ratio"] = round(row["per_s"] / first["per_s"], 2)
        print(f"{row['what']:<60} {row['per_s']:>10} {row['unit']}  {row['ratio']}x")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_check"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="gpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--grpo-steps", type=int, default=20)
    ap.add_argument("--every", type=float, default=2.0, help="seconds between utilization samples")
    ap.add_argument("--bench-steps", type=int, default=200, help="pretraining steps timed per variant (0: no timing)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    smi = shutil.which("nvidia-smi") if a.device != "cpu" else None
    samples = a.out / "nvidia_smi.csv"
    poll = None
    if smi:
        script = (
            f'while true; do echo "$(date +%s.%N), $({smi} --query-gpu=utilization.gpu,memory.used '
            f'--format=csv,noheader,nounits | head -1)"; sleep {a.every}; done'
        )
        poll = subprocess.Popen(["bash", "-c", script], stdout=samples.open("w"))
    args = preset_args(
        band_study.BandStudyArgs,
        band_study.PRESETS,
        a.preset,
        out=a.out / "run",
        seeds=tuple(a.seeds),
        grpo_steps=a.grpo_steps,
        device=a.device,
    )
    speed = throughput(a.preset, a.device, a.bench_steps) if a.bench_steps else []
    tee = Tee(sys.stdout)
    t0, start = time.time(), time.perf_counter()  # utilization samples count from the study's start
    try:
        with contextlib.redirect_stdout(tee):
            band_study.main(args)
    finally:
        total = time.perf_counter() - start
        if poll:
            poll.terminate()
        util = [u for u in utilization(samples, t0) if u["t_s"] >= 0]
        report = {
            "device": a.device,
            "preset": a.preset,
            "seeds": a.seeds,
            "grpo_steps": a.grpo_steps,
            "total_s": round(total, 1),
            "gpu": torch.cuda.get_device_name() if a.device.startswith("cuda") and torch.cuda.is_available() else None,
            "torch": torch.__version__,
            "peak_torch_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20)
            if torch.cuda.is_available()
            else None,
            "peak_nvidia_smi_mib": max((u["mem_mib"] for u in util), default=None),
            "mean_util_pct": round(sum(u["util_pct"] for u in util) / len(util), 1) if util else None,
            "speed_ups": speed,
            "stages": stages("".join(tee.lines), total),
            "utilization": util,
        }
        for st in report["stages"]:
            inside = [u["util_pct"] for u in util if st["start_s"] <= u["t_s"] < st["start_s"] + st["seconds"]]
            st["mean_util_pct"] = round(sum(inside) / len(inside), 1) if inside else None
        (a.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"\n{'stage':<80} {'s':>6} {'util %':>7}")
        for st in report["stages"]:
            print(
                f"{st['stage'][:80]:<80} {st['seconds']:>6} "
                f"{st['mean_util_pct'] if st['mean_util_pct'] is not None else '–':>7}"
            )
        print(
            f"total {report['total_s']} s on {report['gpu'] or a.device}; mean utilization {report['mean_util_pct']}%; "
            f"peak GPU memory {report['peak_torch_gpu_mib']} MiB (torch), {report['peak_nvidia_smi_mib']} MiB "
            "(nvidia-smi)"
        )


if __name__ == "__main__":
    main()
