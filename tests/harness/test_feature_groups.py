"""The one registry of behaviour feature groups: its names, its subsets and their order, and that what it says each
group is read by and checked on is what the read-outs and the causal checks really compute."""

import dataclasses

import numpy as np
import pytest

from experiments import pretrain
from experiments.analysis.gain_results import fraction_values
from experiments.harness import seeds
from experiments.harness.reading import labelling
from experiments.harness.reading.feature_groups import ATTRIBUTED, BY_NAME, CONTRASTED, FEATURE_GROUPS, NAMES, READOUTS
from experiments.harness.reading.readouts import task_readouts
from experiments.harness.tasks.registry import task_of
from experiments.harness.training.model import ModelSpec, build_model, build_tokenizer, save_model
from experiments.harness.training.rollout import BEHAVIOURS, behaviour_table
from probes.bands import BANDS
from probes.causal import Expectation, check
from probes.models import load_bridge


def test_registry__names_and_read_outs_unique_and_every_field_documented():
    assert len(set(NAMES)) == len(NAMES) == len(FEATURE_GROUPS)
    assert len(set(READOUTS)) == len(READOUTS)  # a latent joins at most one group: one read-out each
    assert list(BY_NAME) == list(NAMES) and all(BY_NAME[g.name] is g for g in FEATURE_GROUPS)
    assert FEATURE_GROUPS[0].__dataclass_params__.frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        FEATURE_GROUPS[0].name = "other"  # type: ignore[misc]
    from experiments.harness.cli import field_docs

    assert set(field_docs(type(FEATURE_GROUPS[0]))) == {f.name for f in dataclasses.fields(FEATURE_GROUPS[0])}


def test_subsets__contrasted_within_attributed_which_is_every_group_in_results_json_order():
    # results.json's key order (bands/*/gain_share, labels_by_sae, model_diffing/*/readings/groups; the contrasted
    # three in feature_change, at_final_step, noise_floor): reordering these changes every study's bytes.
    assert NAMES == ("shortcut", "computation", "deliberation", "mode")
    assert ATTRIBUTED == NAMES
    assert CONTRASTED == tuple(g for g in ATTRIBUTED if g in CONTRASTED) == ("shortcut", "computation", "deliberation")
    assert set(CONTRASTED) < set(ATTRIBUTED)
    # the consumers key their output by the registry, in its order
    assert all(list(per_band) == list(ATTRIBUTED) for per_band in fraction_values({}, seeds=[]).values())
    assert list(fraction_values({}, seeds=[])) == list(BANDS)
    features = {"causal": {"checks": {}}, "counts": dict.fromkeys(NAMES, 0)}
    assert list(labelling.summary(features)) == list(NAMES)


@pytest.mark.parametrize("preset", ["smoke", "maze-smoke"])
def test_read_outs__every_group_is_read_by_a_read_out_task_readouts_computes(preset):
    """On the smoke study's task (and the maze smoke task): task_readouts' keys are the registry's read-outs, in
    its order, and each has rows on problems where a direct answer can work and where only a trace can."""
    task = task_of(pretrain.PRESETS[preset])
    vocab = build_tokenizer(task).get_vocab()
    ks = task.knobs(5)
    problems = [pr for k in ks for pr in seeds.problems("causal", 0, k, 3, task)]
    ro = task_readouts(vocab, problems, task.shortcut_k)
    assert list(ro) == list(READOUTS)
    for g in FEATURE_GROUPS:
        assert g.readout in ro and len(ro[g.readout].seq_R) > 0, g.name


def test_causal_metrics__every_group_expects_a_behaviour_the_check_computes_in_its_direction(tmp_path):
    """Each group's behaviour (and off-target one) is what ``behaviour_table`` measures for its check, read on a tiny
    model of the smoke task; the check passes a change in the registry's direction and fails the opposite one."""
    assert {g.name: Expectation(g.behaviour, g.sign, g.off_target) for g in FEATURE_GROUPS} == labelling.EXPECTATIONS
    assert {g.name: g.checked_on for g in FEATURE_GROUPS} == labelling.CHECKED_ON
    task = task_of(pretrain.PRESETS["smoke"])
    tok = build_tokenizer(task)
    save_model(build_model(ModelSpec(d_model=32, n_layers=2, n_heads=2, d_mlp=64), tok, seed=0), tok, tmp_path / "m")
    bridge = load_bridge(tmp_path / "m")
    problems = [pr for k in (1, 2) for pr in seeds.problems("causal", 0, k, 3, task)]
    for g in FEATURE_GROUPS:
        assert g.behaviour in BEHAVIOURS and (g.off_target is None or g.off_target in BEHAVIOURS), g.name
        assert g.sign in (-1.0, 0.0, 1.0) and g.checked_on in ("direct works", "trace only", "all"), g.name
        assert len(labelling.checked_on(g.name, problems, task.shortcut_k)) > 0, g.name
        clean = behaviour_table(bridge, tok, problems, which=labelling.needed(g.name))
        assert set(clean) == {g.behaviour} | ({g.off_target} if g.off_target else set()), g.name

        def shifted(delta: float, clean=clean, g=g) -> dict[str, np.ndarray]:
            """The clean behaviours with only the group's own one moved by ``delta``."""
            return {b: v + (delta if b == g.behaviour else 0.0) for b, v in clean.items()}

        way = g.sign or 1.0
        randoms = [shifted(0.1 * way * (1 + i)) for i in range(3)]
        res = check(labelling.EXPECTATIONS[g.name], clean, shifted(0.5 * way), randoms)
        assert res.passed and res.behaviour == g.behaviour, g.name
        if g.sign:
            assert not check(labelling.EXPECTATIONS[g.name], clean, shifted(-0.5 * way), randoms).passed, g.name
