"""The supervised step's chunked accumulation against one forward over the whole batch."""

import numpy as np
import torch

from experiments.harness.arith import Arithmetic, TaskSpec
from experiments.harness.model import ModelSpec, build_model, build_tokenizer
from experiments.harness.supervised import CHUNK_ROWS, accumulate, collate, example


def testaccumulate__chunks_by_length_give_the_whole_batch_loss_gradient_and_extra_logits():
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
