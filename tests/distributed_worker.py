"""One worker process of the multi-worker tests (tests/test_distributed.py), not a test module.

    python tests/distributed_worker.py OUT MODE

TF_CONFIG (set by the test) describes the cluster. The experiment is small and online (conv4
width 8 on real MNIST digits, P x K = 8 x 4, 20 steps in two chunks of 10, no evaluation).
MODE ``full`` trains it; ``first-chunk`` stops every worker after the first chunk as an
interruption would (KeyboardInterrupt, exit 130); ``resume`` continues an interrupted run.
Each process prints ``<task>: tiny weights <fingerprint>`` (the runner's line) when it has
trained the run, or ``WEIGHTS <fingerprint>`` when stopped after the first chunk.
"""

from __future__ import annotations

import sys
from pathlib import Path

from oneshot.training.distributed import get_strategy

strategy = get_strategy("multiworker")  # first: before any other TensorFlow operation

from oneshot.experiments import Experiment, OnlineRun  # noqa: E402
from oneshot.losses import TripletMarginLoss  # noqa: E402
from oneshot.miners import BatchHardMiner  # noqa: E402
from oneshot.training import runner  # noqa: E402
from oneshot.training.distributed import weights_fingerprint  # noqa: E402
from oneshot.training.experiment import EvalConfig  # noqa: E402

out, mode = Path(sys.argv[1]), sys.argv[2]
run = OnlineRun(
    name="tiny",
    dataset="mnist",
    image_size=28,
    network="conv4",
    network_kwargs={"width": 8},
    embedding_dim=16,
    loss=TripletMarginLoss(margin=0.2, miner=BatchHardMiner()),
    classes_per_batch=8,
    samples_per_class=4,
    steps=20,
    log_every=10,
    learning_rate=1e-3,
)
experiment = Experiment("tiny-multiworker", "two workers, 20 steps", (run,), EvalConfig())

if mode == "first-chunk":
    import keras

    class Interrupt(keras.callbacks.Callback):
        """After the first chunk's checkpoint (the callbacks before it), as Ctrl-C would."""

        def on_epoch_end(self, epoch, logs=None):
            print(f"WEIGHTS {weights_fingerprint(self.model)}", flush=True)
            raise KeyboardInterrupt  # every worker, after the same step

    real = runner.fit_distributed

    def first_chunk_only(model, *args, callbacks, **kwargs):
        return real(model, *args, callbacks=[*callbacks, Interrupt()], **kwargs)

    runner.fit_distributed = first_chunk_only

try:
    runner.run_experiment(
        experiment, out, strategy="multiworker", evaluate=False, resume=mode == "resume"
    )
except KeyboardInterrupt:
    sys.exit(130)
