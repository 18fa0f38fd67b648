"""Named seed streams: every problem set of a default study comes from its own stream, the sets are disjoint
by content wherever the problem space allows it, and no two named streams share a key or a sampling seed
(except the older ones stated here, kept so that the band study draws what it always drew)."""

import collections
import hashlib
import itertools
import zlib

import numpy as np
import pytest

from experiments import band_study, refinement, value_study
from experiments.band_steps import sae_groups
from experiments.harness import seeds
from experiments.harness.reading.labelling import split_problems
from experiments.harness.reading.probe_sets import probe_problems
from experiments.harness.studies import refinements
from experiments.harness.tasks.arith import Arithmetic, TaskSpec
from experiments.harness.tasks.maze import Mazes

SMOKE_TASK = Arithmetic(TaskSpec(5, ("+",)))


def content(pr) -> tuple:
    return pr.start, pr.ops, pr.operands


def study_sets(task: Arithmetic) -> dict[str, list]:
    """Every problem set the default studies build on the default task, built as the stages build them: the
    band study's candidates (pools and the value-study sample come from them), eval set, base eval table, SAE
    probe set, diffing probe set and causal splits (which skip what the SAE saw), and the refinement study's
    held-out set."""
    study = band_study.BandStudyArgs()
    pre, b, sae = study.pretrain_args, study.bands_args, study.sae_args(study.sae_archs[0])
    eval_ks, train_ks = task.knobs(pre.k_eval_max), task.knobs(pre.k_train_max)
    sae_probe = [pr for pr, _ in probe_problems(sae.probe_spec, task)]
    shortcut_k = sae_groups.label_spec(study).shortcut_k
    per_k = {k: study.causal_shortcut_per_k if k <= shortcut_k else study.causal_per_k for k in train_ks}
    causal_label, causal_test = split_problems(b.seed, train_ks, per_k, task, sae_probe)
    ref = refinement.RefinementArgs()
    drawn = lambda name, seed, n: [pr for k in eval_ks for pr in seeds.problems(name, seed, k, n, task)]  # noqa: E731
    return {
        "band_candidates": drawn("band_candidates", b.seed, b.candidates_per_k),
        "band_eval": drawn("band_eval", b.seed, b.eval_per_k),
        "pretrain_eval": drawn("pretrain_eval", pre.seed, pre.eval_per_k),
        "sae_probe": sae_probe,
        "diff_probe": [pr for pr, _ in probe_problems(study.diff_source.probe, task)],
        "causal_label": causal_label,
        "causal_test": causal_test,
        "refinement_eval": refinements.eval_problems(task, ref.seed, ref.teacher_k_max, ref.eval_per_k),
    }


def by_k(problems) -> dict[int, set]:
    out = collections.defaultdict(set)
    for pr in problems:
        out[pr.k].add(content(pr))
    return out


SHARED = {("band_eval", "refinement_eval")}
"""Sets whose streams draw from one content bucket (``seeds.SHARED_BUCKETS``): not disjoint by construction."""


def test_study_sets__pairwise_disjoint_where_the_space_allows_overlap_stated_below():
    """Default task (p = 11, + - *): from k = 2 on, every pair of sets is disjoint, except the band eval set and
    the refinement held-out set (one bucket, two held-out sets; their chance overlap is stated). At k = 1 (363
    distinct chains) the sets must overlap; the overlap, in distinct shared chains, is stated here (a pure
    function of the streams). The causal splits skip every chain the SAE probe set holds."""
    task = Arithmetic(TaskSpec())
    sets = {name: by_k(problems) for name, problems in study_sets(task).items()}
    overlap_k1, shared = {}, {}
    for (a, sa), (b, sb) in itertools.combinations(sets.items(), 2):
        for k in sorted(sa.keys() & sb.keys()):
            n = len(sa[k] & sb[k])
            if not seeds.partitioned(k, task):
                overlap_k1[(a, b)] = n
            elif (a, b) in SHARED:
                shared[k] = n
            else:
                assert n == 0, (a, b, k)
    assert [k for k in range(1, 11) if not seeds.partitioned(k, task)] == [1]
    assert {name: len(s[1]) for name, s in sets.items()} == DISTINCT_AT_K1
    assert overlap_k1 == OVERLAP_AT_K1
    assert {k: n for k, n in shared.items() if n} == SHARED_OVERLAP


DISTINCT_AT_K1 = {
    "band_candidates": 84,
    "band_eval": 44,
    "pretrain_eval": 89,
    "sae_probe": 148,
    "diff_probe": 10,
    "causal_label": 95,
    "causal_test": 120,
    "refinement_eval": 36,
}
"""Distinct k = 1 chains in each default set."""
OVERLAP_AT_K1 = {
    ("band_candidates", "band_eval"): 12,
    ("band_candidates", "pretrain_eval"): 21,
    ("band_candidates", "sae_probe"): 34,
    ("band_candidates", "diff_probe"): 1,
    ("band_candidates", "causal_label"): 30,
    ("band_candidates", "causal_test"): 20,
    ("band_candidates", "refinement_eval"): 12,
    ("band_eval", "pretrain_eval"): 10,
    ("band_eval", "sae_probe"): 23,
    ("band_eval", "diff_probe"): 0,
    ("band_eval", "causal_label"): 8,
    ("band_eval", "causal_test"): 13,
    ("band_eval", "refinement_eval"): 4,
    ("pretrain_eval", "sae_probe"): 40,
    ("pretrain_eval", "diff_probe"): 6,
    ("pretrain_eval", "causal_label"): 19,
    ("pretrain_eval", "causal_test"): 30,
    ("pretrain_eval", "refinement_eval"): 9,
    ("sae_probe", "diff_probe"): 5,
    ("sae_probe", "causal_label"): 0,
    ("sae_probe", "causal_test"): 0,
    ("sae_probe", "refinement_eval"): 15,
    ("diff_probe", "causal_label"): 2,
    ("diff_probe", "causal_test"): 3,
    ("diff_probe", "refinement_eval"): 2,
    ("causal_label", "causal_test"): 0,
    ("causal_label", "refinement_eval"): 11,
    ("causal_test", "refinement_eval"): 10,
}
"""Distinct k = 1 chains shared by two default sets (none between the SAE probe set and the causal splits, which
skip what the SAE saw, nor between the two causal splits)."""
SHARED_OVERLAP: dict[int, int] = {}
"""Per k >= 2, chains the band eval set (48 per k) and the refinement held-out set (40 per k) share by chance, where
any: none at the defaults (their bucket holds ~2000 chains at k = 2)."""


def test_refinement_eval__disjoint_from_every_pretrain_eval_set_where_partitioned():
    """The refinement held-out set used to be the pretrain_eval stream at seed + 1: exactly the base eval set of
    a run pretrained with seed 1 (``--replicate``). Its own stream never meets pretrain_eval's bucket."""
    for task in (Arithmetic(TaskSpec()), SMOKE_TASK):
        ks = [k for k in task.knobs(8) if seeds.partitioned(k, task)]
        assert ks
        for k in ks:
            base = {content(p) for s in range(5) for p in seeds.problems("pretrain_eval", s, k, 40, task)}
            for s in range(4):
                held_out = seeds.problems("refinement_eval", s, k, 40, task)
                assert not base & {content(p) for p in held_out}, (task.params, k, s)
                assert all(seeds.content_bucket(p) == seeds.bucket_of("band_eval") for p in held_out)
    ref = refinement.RefinementArgs()
    task = Arithmetic(TaskSpec())
    held_out = refinements.eval_problems(task, ref.seed, ref.teacher_k_max, ref.eval_per_k)
    assert len(held_out) == ref.eval_per_k * ref.teacher_k_max and {p.k for p in held_out} == set(range(1, 11))
    assert all(p.pid.startswith("refinement_eval-s0-") for p in held_out)


def _digest(task, streams) -> dict[str, str]:
    ks = task.knobs(6)
    return {
        s: hashlib.sha256(
            repr(
                [(p.pid, p.key) for seed in (0, 1, 2, 7) for k in ks for p in seeds.problems(s, seed, k, 12, task)]
            ).encode()
        ).hexdigest()[:16]
        for s in streams
    }


HEAD_DIGESTS = {
    "default": {
        "band_candidates": "def91c8d71efa8ab",
        "band_eval": "7f4319610235cc8e",
        "pretrain_eval": "def8243df09c0833",
        "sae_probe": "f8a376b698ca5d94",
        "diff_probe": "2323428b90bd03f8",
        "causal": "85ef91facf824481",
    },
    "smoke": {
        "band_candidates": "826062870d05f6e1",
        "band_eval": "42a106f847e109fc",
        "pretrain_eval": "6b93e90676e26fe3",
        "sae_probe": "7b632e0a822acb18",
        "diff_probe": "871546bcee264bc3",
        "causal": "7cc959c5692492f4",
    },
    "maze": {
        "band_candidates": "a2205222fbddfb2a",
        "band_eval": "d906cd93f3202234",
        "pretrain_eval": "74faa1d5dc4da0e1",
        "sae_probe": "7ac20d362c56d63e",
        "diff_probe": "685cb010baf6f5bb",
        "causal": "9f8c4073a5f41556",
    },
}
"""Digests of the six original streams' problems (seeds 0, 1, 2, 7; every knob up to 6; 12 each), computed with
the code before the refinement stream was added (commit 687c5c1): adding a stream moved none of them."""


@pytest.mark.parametrize("name, task", [("default", Arithmetic(TaskSpec())), ("smoke", SMOKE_TASK), ("maze", Mazes())])
def test_problem_streams__the_original_six_draw_what_they_drew_before_the_refinement_stream(name, task):
    assert seeds.PROBLEM_STREAMS[: seeds.N_BUCKETS] == tuple(HEAD_DIGESTS[name])
    assert _digest(task, seeds.PROBLEM_STREAMS[: seeds.N_BUCKETS]) == HEAD_DIGESTS[name]


def test_sampling_seeds__the_band_study_and_older_streams_seed_what_they_seeded_before():
    """The torch seeds every older sampling stream gives (a digest from commit 687c5c1), and the affine ones."""
    drawn = []
    for s in (0, 1, 3):
        drawn += [
            seeds.rollout_activity(s),
            seeds.band_eval_sampling(s),
            seeds.calibration_eval(s),
            seeds.utility_eval(s),
            seeds.eval_sampling(s),
        ]
        for t in (0, 1, 5):
            pairs = seeds.grpo_step(s, t), seeds.one_shot_step(s, 2, t), seeds.pruning_rl_step(s, 1, t)
            for r, g in (*pairs, seeds.blind_gradient(s, t - 1)):
                drawn += [int(r.integers(2**62)), g.initial_seed()]
    assert hashlib.sha256(repr(drawn).encode()).hexdigest()[:16] == "a13a24ae15316915"
    for s in (0, 3):
        assert seeds.eval_sampling(s) == seeds.band_candidates_sampling(s) == seeds.pretrain_eval_sampling(s) == s
        assert seeds.probe_sampling(s).initial_seed() == s and seeds.band_eval_sampling(s) == s + 1
        assert seeds.grpo_step(s, 4)[1].initial_seed() == s * 1_000_003 + 4


# --- every named stream's keys and seeds -------------------------------------------------------------------------


def pcg_words(key) -> tuple[int, ...]:
    """What numpy's SeedSequence hashes: 32-bit words (little-endian per integer), fewer than four padded with 0."""
    words = []
    for x in key:
        words += [x & 0xFFFFFFFF] + [(x >> s) & 0xFFFFFFFF for s in range(32, x.bit_length(), 32)]
    return tuple(words + [0] * (4 - len(words)))


def test_pcg_words__match_numpy():
    first = lambda key: np.random.Generator(np.random.PCG64(key)).integers(2**62)  # noqa: E731
    for a, b in (([3, 17], [3, 17, 0]), ([2**32 + 5], [5, 1]), ([1, 2, 3, 4], [1, 2, 3, 4, 0]), ([7], [0, 7])):
        assert (pcg_words(a) == pcg_words(b)) == (first(a) == first(b)), (a, b)


SEEDS, STEPS, SMALL = range(4), range(80), range(6)
DRAW_KEYS = {
    "pretrain_batch": [(s, t) for s in SEEDS for t in STEPS],
    "grpo_step": [(s, t) for s in SEEDS for t in STEPS],
    "one_shot_step": [(s, i, t) for s in SEEDS for i in SMALL for t in SMALL],
    "memo_subset": [(s, r) for s in SEEDS for r in SMALL],
    "blind_gradient": [(s, i + 1) for s in SEEDS for i in range(-1, 40)],
    "fixed_data_order": [(s, e) for s in SEEDS for e in STEPS],
    "pruning_halves": [(s, n) for s in SEEDS for n in STEPS],
    "pruning_keep": [
        (s, t, n, zlib.crc32(m.encode())) for s in SEEDS for t in SMALL for n in (10, 20) for m in ("el2n", "random")
    ],
    "pruning_rl_step": [(s, a, t) for s in SEEDS for a in SMALL for t in SMALL],
    "refinement": [
        (s, 0, p, *key)
        for s in SEEDS
        for p in range(1, 6)  # purposes, then a purpose's own key
        for key in [(), *((b,) for b in SMALL), *itertools.product(SMALL, SMALL)]
    ]
    + [(s, k) for s in SEEDS for k in range(1, 12)],  # training problems at k
    "memo_sampling": [(s, r) for s in SEEDS for r in SMALL],
    **{
        name: [(s,) for s in SEEDS]
        for name in (
            "band_pools",
            "value_sample",
            "rollout_activity",
            "calibration_eval",
            "utility_eval",
            "pruning_data",
            "value_base_sampling",
            "value_eval_sampling",
            "value_eval_gradient",
        )
    },
}
"""The keys each draw stream is read at (``seeds.rng(stream, *key)``), as its call sites build them, over small
ranges that reach past every small salt."""


def test_draw_salts__every_stream_named_once_with_its_own_last_word():
    assert set(DRAW_KEYS) == set(seeds.DRAW_SALTS)  # the table above covers every stream
    salted = {name: salt for name, salt in seeds.DRAW_SALTS.items() if name != "pretrain_batch"}
    assert seeds.DRAW_SALTS["pretrain_batch"] == () and all(salted.values())
    last = [salt[-1] for salt in salted.values()]
    assert len(set(last)) == len(last)  # two streams never share a salt
    assert min(last) >= len(seeds.PROBLEM_STREAMS)  # nor a problem stream's index word
    assert not set(seeds.AFFINE_SAMPLING) & set(seeds.DRAW_SALTS)  # and no name is in both tables


def test_stream_keys__no_two_streams_share_one_except_pretrain_batch_at_the_older_salts():
    """Every draw stream's keys and the problem streams' keys (default, smoke and maze tasks), as SeedSequence
    sees them: no key belongs to two streams, or twice to one. Stated exception: ``pretrain_batch`` has no salt,
    so its (seed, step) at step = s is a one-word-keyed stream's (seed, s); the streams named since issue 32 have
    salts above any step count."""
    owners = collections.defaultdict(set)
    for name, keys in DRAW_KEYS.items():
        for key in keys:
            owners[pcg_words(seeds.draw_key(name, *key))].add((name, key))
    for task in (Arithmetic(TaskSpec()), SMOKE_TASK, Mazes()):
        for stream, s, k in itertools.product(seeds.PROBLEM_STREAMS, SEEDS, task.knobs(12)):
            owner = f"{stream}@{task.name}{task.stream_key}"
            owners[pcg_words(seeds.problem_key(stream, s, k, task))].add((owner, (s, k)))
    shared = [sorted(o, key=lambda x: x[0] == "pretrain_batch") for o in owners.values() if len(o) > 1]
    assert {name for o in shared for name, _ in o} - {"pretrain_batch"} == OLD_ONE_WORD_STREAMS
    for [(name, key), (batch, (s, step))] in shared:  # exactly pretrain_batch's (seed, salt) and the stream's (seed,)
        assert batch == "pretrain_batch" and key == (s,) and (step,) == seeds.DRAW_SALTS[name]


OLD_ONE_WORD_STREAMS = {
    "band_pools",
    "value_sample",
    "rollout_activity",
    "calibration_eval",
    "utility_eval",
    "pruning_data",
}
"""Streams read at (seed,) whose small salt a pretraining step reaches: pretrain_batch's (seed, salt) draws what
they draw (the same PCG64 key; kept, as changing either would change the band study)."""


def sampling_seeds() -> dict[str, list]:
    """Every torch sampling seed the default studies use, by stream and key (the band study's at its defaults)."""
    study = band_study.BandStudyArgs()
    pre, b, sae = study.pretrain_args, study.bands_args, study.sae_args(study.sae_archs[0])
    v = value_study.ValueArgs()
    ref = refinement.RefinementArgs()
    n_sample, steps = 3 * v.per_band, max(v.one_shot_steps, v.memo_steps)
    return {
        "pretrain_eval_sampling": [(pre.seed, seeds.pretrain_eval_sampling(pre.seed))],
        "band_candidates_sampling": [(b.seed, seeds.band_candidates_sampling(b.seed))],
        "band_eval_sampling": [(b.seed, seeds.band_eval_sampling(b.seed))],
        "probe_sampling": [
            (("sae_probe", sae.seed), seeds.probe_sampling(sae.seed).initial_seed()),
            (("diff_probe", b.seed), seeds.probe_sampling(study.diff_source.probe.seed).initial_seed()),
        ],
        "eval_sampling": [(s, seeds.eval_sampling(s)) for s in study.seeds],
        "grpo_sampling": [
            ((s, t), seeds.grpo_step(s, t)[1].initial_seed()) for s in study.seeds for t in range(study.grpo_steps)
        ],
        "rollout_activity": [(s, seeds.rollout_activity(s)) for s in study.seeds],
        "one_shot_step": [
            ((s, i, t), seeds.one_shot_step(s, i, t)[1].initial_seed())
            for s in v.value_seeds
            for i in range(n_sample + v.memo_subsets)
            for t in range(steps)
        ],
        "blind_gradient": [(i, seeds.blind_gradient(v.seed, i)[1].initial_seed()) for i in range(-1, n_sample)],
        "value_base_sampling": [(v.seed, seeds.value_base_sampling(v.seed))],
        "value_eval_sampling": [(v.seed, seeds.value_eval_sampling(v.seed))],
        "value_eval_gradient": [(v.seed, seeds.value_eval_gradient(v.seed).initial_seed())],
        "memo_sampling": [(r, seeds.memo_sampling(v.seed, r)) for r in range(v.memo_subsets)],
        "calibration_eval": [(0, seeds.calibration_eval(0))],
        "utility_eval": [(0, seeds.utility_eval(0))],
        "pruning_rl_step": [
            ((s, a, t), seeds.pruning_rl_step(s, a, t)[1].initial_seed())
            for s in range(3)
            for a in range(4)
            for t in range(40)
        ],
        "refinement": [(ref.seed, refinement.draw_seed(ref, refinement.PASS))],
    }


def test_sampling_seeds__no_two_streams_share_one_except_the_band_studys_affine_ones_stated_below():
    """torch's CPU generator keeps a seed's low 32 bits, so seeds are compared modulo 2^32. The salted streams
    (``seeds.seed_of``) meet nothing; the band study's affine ones (``seeds.AFFINE_SAMPLING``) meet each other
    at the defaults exactly as stated (the same seed, different problems: correlated draws, kept as they were)."""
    owners = collections.defaultdict(list)
    for name, drawn in sampling_seeds().items():
        for key, seed in drawn:
            owners[seed % 2**32].append((name, key))
    shared = {seed: sorted(o, key=str) for seed, o in owners.items() if len(o) > 1}
    assert all(name in seeds.AFFINE_SAMPLING for o in shared.values() for name, _ in o)
    assert shared == AFFINE_SHARED


AFFINE_SHARED = {
    0: [
        ("band_candidates_sampling", 0),
        ("eval_sampling", 0),
        ("grpo_sampling", (0, 0)),
        ("pretrain_eval_sampling", 0),
        ("probe_sampling", ("diff_probe", 0)),
        ("probe_sampling", ("sae_probe", 0)),
    ],
    1: [("band_eval_sampling", 0), ("eval_sampling", 1), ("grpo_sampling", (0, 1))],
    2: [("eval_sampling", 2), ("grpo_sampling", (0, 2))],
    3: [("eval_sampling", 3), ("grpo_sampling", (0, 3))],
    4: [("eval_sampling", 4), ("grpo_sampling", (0, 4))],
}
"""Sampling seeds shared by the band study's affine streams at its defaults (bands, SAE and pretraining seed 0,
GRPO seeds 0..4): the seed itself, seed + 1 and seed * 1_000_003 + step meet at small values."""


def test_problem_streams__distinct_names_give_distinct_problems_and_seed_moves_them():
    task = Arithmetic(TaskSpec())
    a, b = seeds.problems("band_eval", 0, 5, 30, task), seeds.problems("sae_probe", 0, 5, 30, task)
    assert not {content(p) for p in a} & {content(p) for p in b}
    assert seeds.problems("band_eval", 0, 5, 30, task) == a  # a pure function
    assert seeds.problems("band_eval", 0, 5, 10, task) == a[:10]  # prefixes agree
    assert {content(p) for p in seeds.problems("band_eval", 1, 5, 30, task)} != {content(p) for p in a}
    shared = seeds.problems("refinement_eval", 0, 5, 30, task)  # band_eval's bucket, its own key: other problems
    assert {content(p) for p in shared} != {content(p) for p in a}


def test_problem_streams__each_problem_lands_in_its_own_streams_bucket():
    task = Arithmetic(TaskSpec())
    assert [seeds.bucket_of(s) for s in seeds.PROBLEM_STREAMS] == [0, 1, 2, 3, 4, 5, 1]
    assert seeds.partitioned(2, task) and seeds.MIN_BUCKET * seeds.N_BUCKETS == 6000  # the threshold did not move
    for s in seeds.PROBLEM_STREAMS:
        assert all(seeds.content_bucket(p) == seeds.bucket_of(s) for p in seeds.problems(s, 3, 4, 50, task))


def test_problem_streams__unknown_stream_is_an_error():
    with pytest.raises(ValueError):
        seeds.problems("nope", 0, 2, 1, Arithmetic())
