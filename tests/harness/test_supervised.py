"""The supervised step's chunked accumulation against one forward over the whole batch."""

import numpy as np
import torch

from experiments.harness.tasks.arith import Arithmetic, TaskSpec
from experiments.harness.training import chunk_pool as chunk_pool_module
from experiments.harness.training.chunk_pool import chunk_pool, split
from experiments.harness.training.model import ModelSpec, build_model, build_tokenizer
from experiments.harness.training.supervised import CHUNK_ROWS, accumulate, collate, example


def test_accumulate__chunks_by_length_give_the_whole_batch_loss_gradient_and_extra_logits():
    task, tok = Arithmetic(TaskSpec()), build_tokenizer(TaskSpec())
    vocab = tok.get_vocab()
    model = build_model(ModelSpec(d_model=32, n_layers=2, n_heads=2, d_mlp=64), tok, seed=0).train()
    rng = np.random.default_rng(0)
    stream = [example(task.draw(rng, int(k)), "deliberate", vocab) for k in rng.integers(1, 9, 3 * CHUNK_ROWS + 5)]
    more = [example(task.draw(rng, 2), "direct", vocab) for _ in range(3)]
    ids_BL, labels_BL = collate(stream + more, vocab)
    whole = model(input_ids=ids_BL, labels=labels_BL)
    whole.loss.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    seen = []
    loss = accumulate(model, stream, more, vocab, observe=lambda logits, labels: seen.append((logits, labels)))
    assert torch.allclose(loss, whole.loss.detach(), atol=1e-6)
    assert all(torch.allclose(p.grad, g, atol=1e-6) for p, g in zip(model.parameters(), expected))
    ((logits, labels),) = seen
    extra_ids, extra_labels = collate(more, vocab)
    assert torch.equal(labels, extra_labels) and torch.allclose(logits, model(input_ids=extra_ids).logits, atol=1e-5)


def test_chunk_pool_split__contiguous_blocks_of_near_equal_cost_this_process_first():
    assert split([1, 1, 1, 5], 2) == [0, 3, 4]  # the last chunk costs as much as the rest
    assert split([384, 512, 704, 1280], 2) == [0, 3, 4]  # four chunks of a pretraining step, sorted by length
    assert split([2, 2, 2, 2], 2) == [0, 2, 4] and split([2, 2, 2, 2], 3) == [0, 1, 3, 4]
    assert split([3], 2) == [0, 1, 1]  # one chunk: a helper idles


def test_chunk_pool__helpers_give_the_same_gradient_loss_and_extra_logits_bit_for_bit(monkeypatch):
    """Four uneven chunks and an extra chunk, on one process and on two or three (the helpers really running
    chunks): the same loss, gradient and extra logits, bit for bit."""
    task, tok = Arithmetic(TaskSpec()), build_tokenizer(TaskSpec())
    vocab = tok.get_vocab()
    rng = np.random.default_rng(1)
    stream = [example(task.draw(rng, int(k)), "deliberate", vocab) for k in rng.integers(1, 9, 3 * CHUNK_ROWS + 5)]
    more = [example(task.draw(rng, 2), "direct", vocab) for _ in range(3)]

    monkeypatch.setattr(chunk_pool_module, "MIN_PARAMS", 0)  # a tiny model, so the helpers run at all

    def step(processes: int, max_chunks: int = 4):
        model = build_model(ModelSpec(d_model=32, n_layers=2, n_heads=2, d_mlp=64), tok, seed=0).train()
        seen, kept = [], []
        with chunk_pool(model, processes, max_chunks=max_chunks) as pool:
            if pool:
                dispatch = pool.dispatch
                pool.dispatch = lambda *a: kept.append(dispatch(*a)) or kept[-1]
            loss = accumulate(model, stream, more, vocab, observe=lambda logits, labels: seen.append(logits), pool=pool)
        return kept, loss, [p.grad for p in model.parameters()], seen

    _, loss, grads, seen = step(1)
    # 16 slots of every parameter: more shared tensors than a forkserver start can pass (a batch of 512 failed so)
    for processes, max_chunks in ((2, 4), (3, 4), (2, 16)):
        kept, loss_n, grads_n, seen_n = step(processes, max_chunks)
        assert kept and kept[0] < 4  # the helpers ran the later chunks
        assert torch.equal(loss_n, loss) and all(torch.equal(a, b) for a, b in zip(grads_n, grads))
        assert torch.equal(seen_n[0], seen[0])
