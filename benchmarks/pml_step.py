"""The pytorch-metric-learning side of ``bench_pml_step.py``: the same conv4 28x28 batch-hard
training step in PyTorch, timed on request. Runs in its own virtual environment (no TensorFlow):

    python -m venv /work/pmlvenv
    /work/pmlvenv/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
    /work/pmlvenv/bin/pip install pytorch-metric-learning==2.9.0 numpy

    /work/pmlvenv/bin/python benchmarks/pml_step.py BATCHES.npz [THREADS]

``BATCHES.npz`` holds ``x`` (n, B, 28, 28, 1) float32 images and ``y`` (n, B) int labels (real
P x K batches written by ``bench_pml_step.py``). The network is the project's conv4 (4 x
[Conv3x3 'same' without bias + BatchNorm (momentum 0.9) + ReLU + MaxPool 2], Linear 64,
BatchNorm, L2 normalisation), the loss ``losses.TripletMarginLoss(margin=0.2)`` with
``miners.BatchHardMiner()`` and ``reducers.MeanReducer()`` (the project's benchmark loss), Adam
at 1e-3; ``THREADS`` sets ``torch.set_num_threads`` (default: PyTorch's). It prints one JSON line of versions and threads, then answers every input line ``N``
with the JSON ``{"seconds": ...}`` of N steps cycling through the batches.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytorch_metric_learning
import torch
from pytorch_metric_learning import losses, miners, reducers

MARGIN = 0.2


def conv4(width: int = 64, dim: int = 64) -> torch.nn.Module:
    """The project's conv4 in PyTorch (Keras's BatchNormalization momentum 0.9 = torch's 0.1)."""
    blocks, channels = [], 1
    for _ in range(4):
        blocks += [
            torch.nn.Conv2d(channels, width, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(width, eps=1e-3, momentum=0.1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        ]
        channels = width
    return torch.nn.Sequential(
        *blocks,
        torch.nn.Flatten(),
        torch.nn.Linear(width, dim),  # 28 -> 14 -> 7 -> 3 -> 1 after four poolings
        torch.nn.BatchNorm1d(dim, eps=1e-3, momentum=0.1),
    )


def main() -> None:
    torch.manual_seed(0)
    if len(sys.argv) > 2 and int(sys.argv[2]) > 0:
        torch.set_num_threads(int(sys.argv[2]))
    data = np.load(sys.argv[1])
    xs = [torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))) for x in data["x"]]
    ys = [torch.from_numpy(y.astype(np.int64)) for y in data["y"]]
    model = conv4()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = losses.TripletMarginLoss(margin=MARGIN, reducer=reducers.MeanReducer())
    miner = miners.BatchHardMiner()
    model.train()

    def step(i: int) -> float:
        x, y = xs[i % len(xs)], ys[i % len(ys)]
        embeddings = torch.nn.functional.normalize(model(x), dim=1)
        loss = loss_fn(embeddings, y, miner(embeddings, y))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    done = 0
    print(json.dumps({
        "torch": torch.__version__, "pytorch_metric_learning": pytorch_metric_learning.__version__,
        "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }), flush=True)  # fmt: skip
    for line in sys.stdin:
        steps = int(line)
        started = time.perf_counter()
        for _ in range(steps):
            step(done)
            done += 1
        print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)


if __name__ == "__main__":
    main()
