"""The GPU check: a reduced band study on one device, with per-stage wall times, GPU utilization samples
and peak GPU memory, written to OUT/gpu_check.json and printed.

    python scripts/gpu_check.py [--out gpu_check] [--device cuda] [--preset gpu] [--seeds 0] [--grpo-steps 20]

By default the gpu preset with 1 seed x 3 bands and 20 GRPO updates per run. Nothing is downloaded:
transformer-lens, sae-lens and what they need must be installed already (from local wheels where the
machine has no network; README, "GPU"). Where no GPU exists, ``--device cpu --preset smoke`` runs the
same path with no utilization samples. Utilization comes from ``nvidia-smi`` every ``--every`` seconds
(the share of time a kernel ran: a launch-bound model can read high while the GPU's cores idle).
"""

from __future__ import annotations

import argparse
import contextlib
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

from experiments import band_study  # noqa: E402
from experiments.harness.cli import preset_args  # noqa: E402

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
            rows.append({"t_s": round(float(parts[0]) - t0, 1), "util_pct": float(parts[1]), "mem_mib": float(parts[2])})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_check"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="gpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--grpo-steps", type=int, default=20)
    ap.add_argument("--every", type=float, default=2.0, help="seconds between utilization samples")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    smi = shutil.which("nvidia-smi") if a.device != "cpu" else None
    samples = a.out / "nvidia_smi.csv"
    t0 = time.time()
    poll = None
    if smi:
        script = f"while true; do echo \"$(date +%s.%N), $({smi} --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits | head -1)\"; sleep {a.every}; done"
        poll = subprocess.Popen(["bash", "-c", script], stdout=samples.open("w"))
    args = preset_args(band_study.BandStudyArgs, band_study.PRESETS, a.preset, out=a.out / "run", seeds=tuple(a.seeds),
                       grpo_steps=a.grpo_steps, device=a.device)  # fmt: skip
    tee = Tee(sys.stdout)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(tee):
            band_study.main(args)
    finally:
        total = time.perf_counter() - start
        if poll:
            poll.terminate()
        util = utilization(samples, t0)
        report = {
            "device": a.device, "preset": a.preset, "seeds": a.seeds, "grpo_steps": a.grpo_steps, "total_s": round(total, 1),
            "gpu": torch.cuda.get_device_name() if a.device.startswith("cuda") and torch.cuda.is_available() else None,
            "torch": torch.__version__,
            "peak_torch_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None,
            "peak_nvidia_smi_mib": max((u["mem_mib"] for u in util), default=None),
            "mean_util_pct": round(sum(u["util_pct"] for u in util) / len(util), 1) if util else None,
            "stages": stages("".join(tee.lines), total),
            "utilization": util,
        }  # fmt: skip
        for st in report["stages"]:
            inside = [u["util_pct"] for u in util if st["start_s"] <= u["t_s"] < st["start_s"] + st["seconds"]]
            st["mean_util_pct"] = round(sum(inside) / len(inside), 1) if inside else None
        (a.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"\n{'stage':<80} {'s':>6} {'util %':>7}")
        for st in report["stages"]:
            print(f"{st['stage'][:80]:<80} {st['seconds']:>6} {st['mean_util_pct'] if st['mean_util_pct'] is not None else '–':>7}")
        print(f"total {report['total_s']} s on {report['gpu'] or a.device}; mean utilization {report['mean_util_pct']}%; "
              f"peak GPU memory {report['peak_torch_gpu_mib']} MiB (torch), {report['peak_nvidia_smi_mib']} MiB (nvidia-smi)")  # fmt: skip


if __name__ == "__main__":
    main()
