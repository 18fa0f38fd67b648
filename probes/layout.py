"""The run directory, read side: every path, file name and checkpoint rule in one place.

Stages write through ``experiments.harness.rundir``; everything that reads a run (stages,
reports, notebooks, a user's own code) finds its files here;
docs/run_directory.md describes the tree (its one copy).

A checkpoint ``checkpoint-<step>/`` counts only once its trainer state, written last, exists.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

CONFIG = "config.json"
BASE = "base"
BASE_EVAL = "eval.json"
BAND_TABLE = "table.json"
RUN_ARGS = "args.json"
METRICS = "metrics.jsonl"
LEDGER = "ledger.jsonl"
MATCH = "match.jsonl"
"""Evaluations at replayed steps between checkpoints, made while pinning down the matched step."""
GAIN_ATTRIBUTION = "gain_attribution.json"
"""Per SAE: accuracies of the run's matched checkpoint with each feature group patched to base values (and back)."""
ROLLOUT_ACTIVITY = "rollout_activity.json"
"""Per checkpoint step of a hard-band run: the deliberation group's activity on its own rollouts, and their success."""
TRAINER_STATE = "trainer_state.safetensors"
"""Optimizer state beside a checkpoint's weights; written last, so it marks the checkpoint complete."""
INGESTED = "ingested.json"
"""Beside an ingested band run's files and in each of its checkpoints: the engine and source it came from (an ingested
run is never trained or replayed here; ``experiments.ingest``)."""
FEATURES = "features.json"
MODEL_DIFFING = "model_diffing.json"
"""Per band, under diffing/<band>/: its change dictionaries' readings, labels and causal checks."""
SAE_EVALS = "evals.json"
SAE_TRAIN = "train.json"
RESULTS = "results.json"
REPORT = "report.md"
PROFILE = "profile.jsonl"
"""One line per finished stage of each invocation of a study: its name, the invocation's start, seconds."""
FIGURES = "figures"

_CKPT = re.compile(r"^(?:checkpoint|ckpt)-(\d+)$")
"""``checkpoint-<step>`` as HF and TRL name them; ``ckpt-<step>``, the name before December 2026, is still read."""


class RunDirError(Exception):
    """A run directory that cannot be used as asked (its message names the file)."""


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RunDirError(f"{path}: unreadable JSON ({e})") from None


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSON-lines file; a line cut short by a kill is skipped; a missing file has none."""
    path = Path(path)
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def run_name(band: str, seed: int) -> str:
    """A band run's name, its path inside the run directory (``bands/<band>/seed<s>``)."""
    return f"bands/{band}/seed{seed}"


def band_of_run(name: str) -> str:
    """The band of a run named by ``run_name``."""
    return name.split("/")[1]


def checkpoint_name(step: int) -> str:
    """The directory a new checkpoint after ``step`` updates is written to."""
    return f"checkpoint-{step}"


def checkpoint_dir(band_run: Path, step: int) -> Path:
    """Where a band run's checkpoint after ``step`` updates is: an existing ``ckpt-<step>`` of an older run,
    else ``checkpoint-<step>``."""
    legacy = Path(band_run) / f"ckpt-{step}"
    return legacy if legacy.is_dir() else Path(band_run) / checkpoint_name(step)


def point_name(step: float) -> str:
    """A band run's model after ``step`` updates: ``checkpoint-<step>`` for a whole step, ``interp-<step>`` for a blend
    inside one update (sub-step matching, ``probes.matched_gain``), which is never a checkpoint to resume from."""
    return checkpoint_name(int(step)) if float(step).is_integer() else f"interp-{float(step)!r}"


def checkpoint_step(path: Path) -> int | None:
    """The step of a ``checkpoint-<step>`` (or ``ckpt-<step>``) directory, None for any other path."""
    m = _CKPT.match(Path(path).name)
    return int(m.group(1)) if m else None


def point_step(path: Path | str) -> float | None:
    """The step of a checkpoint or ``interp-<step>`` directory (``point_name``), None for any other path."""
    name = Path(path).name
    if name.startswith("interp-"):
        return float(name.removeprefix("interp-"))
    return checkpoint_step(Path(path))


def is_complete(ckpt: Path) -> bool:
    """Written to the end: bandlens's own checkpoints end with their optimizer state, ingested ones with INGESTED."""
    return (Path(ckpt) / TRAINER_STATE).is_file() or (Path(ckpt) / INGESTED).is_file()


def checkpoints(band_run: Path) -> dict[int, Path]:
    """The complete checkpoints of one band run, by step, in step order."""
    found = {}
    for p in Path(band_run).glob("*-*"):
        step = checkpoint_step(p)
        if step is not None and is_complete(p):
            found[step] = p
    return dict(sorted(found.items()))


def latest_checkpoint(band_run: Path) -> int:
    """Step of the newest complete checkpoint (0 when there is none)."""
    return max(checkpoints(band_run), default=0)


@dataclasses.dataclass(frozen=True)
class _StudyOutputs:
    """What every study writes at its root: results.json, report.md, figures/."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def results(self) -> Path:
        return self.root / RESULTS

    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def profile(self) -> Path:
        return self.root / PROFILE

    @property
    def figures(self) -> Path:
        return self.root / FIGURES


@dataclasses.dataclass(frozen=True)
class RunLayout(_StudyOutputs):
    """Paths of one run directory."""

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def base(self) -> Path:
        return self.root / BASE

    @property
    def base_eval(self) -> Path:
        return self.base / BASE_EVAL

    @property
    def pretrain_state(self) -> Path:
        return self.root / "pretrain_state.safetensors"

    @property
    def band_table(self) -> Path:
        return self.root / "bands" / BAND_TABLE

    def step0_eval(self, seed: int) -> Path:
        """The base model's held-out evaluation with seed ``seed``'s draws: step 0 of every band run of that seed."""
        return self.root / "bands" / f"step0-eval-seed{seed}.json"

    def band_run(self, band: str, seed: int, study: str = "") -> Path:
        """A GRPO run of the band study (``bands/<band>/seed<s>``) or of another ``study`` (``<study>/seed<s>``, the
        study's path naming its band and arm)."""
        return self.root / (f"{study}/seed{seed}" if study else run_name(band, seed))

    def band_runs(self) -> dict[str, Path]:
        """Every band run with a metrics log, keyed by ``run_name`` (the names diff.json uses)."""
        dirs = sorted(p.parent for p in self.root.glob(f"bands/*/seed*/{METRICS}"))
        return {d.relative_to(self.root).as_posix(): d for d in dirs}

    def checkpoints(self) -> list[Path]:
        """The base model, then every band run's complete checkpoints in step order."""
        runs = sorted(p.parent for p in self.root.glob("bands/*/seed*/*-*") if checkpoint_step(p) is not None)
        return [self.base, *(c for run in dict.fromkeys(runs) for c in checkpoints(run).values())]

    def name_of(self, ckpt: Path) -> str:
        """A checkpoint's key in diff.json and latent_means: its path inside the run, a model after n updates
        named ``point_name(n)`` whatever its directory is called."""
        rel, step = Path(ckpt).relative_to(self.root), point_step(ckpt)
        return (rel if step is None else rel.parent / point_name(step)).as_posix()

    @property
    def acts(self) -> Path:
        return self.root / "acts"

    def base_cache(self, hook: str) -> Path:
        """The base model's activation cache at ``hook`` (acts/base/probe-*/<hook>)."""
        found = sorted(self.root.glob(f"acts/{BASE}/probe-*/{hook}/meta.json"))
        if not found:
            raise FileNotFoundError(f"{self.root}: no base activation cache at {hook}")
        return found[0].parent

    def sae(self, name: str) -> Path:
        return self.root / "sae" / name

    def diffing(self, band: str) -> Path:
        """A band's change dictionaries (crosscoder/, difference/) and their reading (model_diffing.json)."""
        return self.root / "diffing" / band

    def saes(self) -> list[str]:
        """Names of the SAEs with labelled features, sorted."""
        return sorted(p.parent.name for p in self.root.glob(f"sae/*/{FEATURES}"))

    @property
    def hook_choice(self) -> Path:
        """Which hook the band study's SAEs read, chosen by its labelling-split rule, with every candidate's scores."""
        return self.root / "hook_choice.json"

    @property
    def replicates(self) -> Path:
        """Verdict classes over pretraining seeds (``band_study --replicate N``)."""
        return self.root / "replicates.json"

    @property
    def diff(self) -> Path:
        return self.root / "diff.json"

    @property
    def latent_means(self) -> Path:
        return self.root / "latent_means.safetensors"

    @property
    def value(self) -> ValueLayout:
        return ValueLayout(self.root / "value")

    def calibration(self, band: str = "medium") -> RewardStudyLayout:
        """The calibration study on one band's pool (``calibration/<band>/``)."""
        return RewardStudyLayout(self.root / "calibration" / band)

    def utility(self, band: str = "medium") -> RewardStudyLayout:
        """The utility study on one band's pool (``utility/<band>/``)."""
        return RewardStudyLayout(self.root / "utility" / band)

    @property
    def remedies(self) -> RewardStudyLayout:
        """The remedies study on the hard pool (``remedies/``; its runs in ``<arm>/seed<s>/`` there)."""
        return RewardStudyLayout(self.root / "remedies")

    @property
    def pruning(self) -> PruningLayout:
        """The pruning study (``pruning/``)."""
        return PruningLayout(self.root / "pruning")

    @property
    def refinement(self) -> RefinementLayout:
        """The teacher-refinement study (``refinement/``)."""
        return RefinementLayout(self.root / "refinement")

    @property
    def trace_length(self) -> Path:
        """The trace-length study's rows, statistics and figure (``trace_length/``)."""
        return self.root / "trace_length"


@dataclasses.dataclass(frozen=True)
class RewardStudyLayout(_StudyOutputs):
    """Paths of a study that trains GRPO runs of its own on one band's pool (``calibration/<band>/``,
    ``utility/<band>/``; its runs in ``<arm>/seed<s>/`` there)."""

    def samples(self, model: str) -> Path:
        """What the study read from a model (``base`` or ``<arm>/seed<s>``)."""
        return self.root / "samples" / f"{model.replace('/', '-')}.json"


@dataclasses.dataclass(frozen=True)
class PruningLayout(_StudyOutputs):
    """Paths of the pruning study inside a run (``pruning/``)."""

    def dataset(self, size: int) -> Path:
        """The size-``size`` dataset's examples (a prefix of one stream: smaller datasets nest in larger)."""
        return self.root / "data" / f"n{size}.json"

    def scores(self, size: int, seed: int) -> Path:
        """One scoring run's reads on the size-``size`` dataset."""
        return self.root / "scores" / f"n{size}" / f"seed{seed}.json"

    def arm(self, name: str, seed: int) -> Path:
        """One training run's held-out correctness (``name`` from ``arm_name``; ``rl/base``: the base model's)."""
        return self.root / "arms" / name / f"seed{seed}.json"

    @staticmethod
    def arm_name(size: int | str, metric: str, policy: str, fraction: float) -> str:
        """``n<size>/<metric>/<policy>/f<fraction>`` (``rl/...`` for an RL pool), ``<where>/all`` unpruned."""
        where = f"n{size}" if isinstance(size, int) else size
        return f"{where}/" + ("all" if fraction == 1 else f"{metric}/{policy}/f{fraction:g}")


@dataclasses.dataclass(frozen=True)
class RefinementLayout(_StudyOutputs):
    """Paths of the teacher-refinement study inside a run (``refinement/``)."""

    @property
    def teacher(self) -> Path:
        """The teacher model (an HF directory)."""
        return self.root / "teacher"

    @property
    def samples(self) -> Path:
        """Original and refined samples with the student's and teacher's reads."""
        return self.root / "samples.json"

    def arm(self, name: str, seed: int) -> Path:
        """One fine-tuning run's held-out correctness."""
        return self.root / "arms" / name / f"seed{seed}.json"


@dataclasses.dataclass(frozen=True)
class ValueLayout(_StudyOutputs):
    """Paths of the value study inside a run (``value/``)."""

    @property
    def sample(self) -> Path:
        return self.root / "sample.json"

    @property
    def base(self) -> Path:
        return self.root / "base.json"

    def sft(self, seed: int) -> Path:
        return self.root / "sft" / f"seed{seed}.json"

    def one_shot(self, seed: int) -> Path:
        return self.root / "one_shot" / f"seed{seed}.jsonl"

    def one_shots(self) -> list[Path]:
        return sorted(self.root.glob("one_shot/seed*.jsonl"))

    @property
    def grad(self) -> Path:
        return self.root / "grad.json"

    def memo(self, subset: int) -> Path:
        return self.root / "memo" / f"subset{subset}.json"

    @property
    def examples(self) -> Path:
        return self.root / "examples.json"
