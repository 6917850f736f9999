"""The project's training step against pytorch-metric-learning's, side by side on one machine:
conv4 28x28, batch-hard triplet loss, P x K = 32 x 4.

    python benchmarks/bench_pml_step.py [--steps 40] [--rounds 5] [--pml-python PYTHON]
                                        [--pml-threads N] [--quick] [--data-dir DIR]
                                        [--out results/benchmarks/pml_step.txt]

Needs the real data (``export ONESHOT_DATA_DIR=...``): Omniglot background at 28x28, of which 8
real P x K batches are drawn and held in memory, the same for every way (the input pipeline is
out of the comparison). ``--pml-python`` (default ``/work/pmlvenv/bin/python``) is a Python
with torch and pytorch-metric-learning; ``benchmarks/pml_step.py`` says how to make it and what
its step is. The ways, taking turns round after round (A B C A B C ...), each timed per call of
``--steps`` steps after one warm-up call:

- ``project fit``: ``model.fit`` of the model ``oneshot.training.setup.build_model`` makes
  (conv4 width 64, embedding 64, ``TripletMarginLoss(0.2, BatchHardMiner(), MeanReducer())``,
  Adam 1e-3), one ``fit`` call per call with the runner's ``StopOnNaN`` (``--loop fit``);
- ``project graph loop``: the same model trained by ``oneshot.training.loop.fit_loop``, the
  runner's default (``--loop graph``), one call per call;
- ``pml``: the same step in PyTorch with pytorch-metric-learning, in its own process, which
  waits (idle) while the others run.

``images/s`` = images per step x steps / median wall seconds of a call (whole calls: ``fit``'s
set-up included, as a user calling ``fit`` per chunk sees it); ``in steps`` = the same from the
time between the first step's start and the last step's end (``fit``'s epoch); ``vs pml`` =
images/s over pml's. The header names the processor and its vector flags, the threads and the
load average: numbers from a loaded machine are not speeds.

``--quick``: P x K = 8 x 4, 3 steps, 1 round (a smoke test; without the PyTorch Python the pml
row says so).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # measure.py and friends
from measure import cpu_line, header, threads_line, write_table  # noqa: E402
from training_setups import (  # noqa: E402
    DEFAULT_NETWORK,
    HEADLINE_P,
    K,
    load_train,
    memory_batches,
    run_config,
)

PML_PYTHON = "/work/pmlvenv/bin/python"
WAYS = ("project fit", "project graph loop", "pml")


class PmlProcess:
    """``pml_step.py`` in ``python``, kept running; :meth:`run` times ``steps`` steps there."""

    def __init__(self, python: str, batches_file: Path, threads: int = 0) -> None:
        script = Path(__file__).resolve().with_name("pml_step.py")
        self.proc = subprocess.Popen(
            [python, str(script), str(batches_file), str(threads)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"pml_step.py failed:\n{self.proc.stderr.read()[-3000:]}")
        return json.loads(line)

    def run(self, steps: int) -> dict[str, float]:
        self.proc.stdin.write(f"{steps}\n")
        self.proc.stdin.flush()
        seconds = self._read()["seconds"]
        return {"wall": seconds, "inside": seconds}

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def project_ways(train, p: int):
    """``{way: run(steps) -> {"wall", "inside"}}`` for the two project ways."""
    import keras
    import numpy as np
    import tensorflow as tf

    from oneshot.training.callbacks import StopOnNaN
    from oneshot.training.loop import fit_loop
    from oneshot.training.setup import build_model

    batches = memory_batches(train, p)
    xs, ys = (tf.stack(parts) for parts in zip(*batches, strict=True))
    dataset = tf.data.Dataset.from_tensor_slices((xs, ys)).repeat()
    config = run_config(DEFAULT_NETWORK, "online", p=p)

    class EpochTime(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    def way(train_with):
        keras.utils.set_random_seed(0)
        model, epoch = build_model(config), [0]

        def run(steps: int) -> dict[str, float]:
            timer = EpochTime()
            callbacks = [StopOnNaN(steps), timer]
            started = time.perf_counter()
            train_with(model, dataset, initial_epoch=epoch[0], epochs=epoch[0] + 1,
                       steps_per_epoch=steps, callbacks=callbacks, verbose=0)  # fmt: skip
            epoch[0] += 1
            return {"wall": time.perf_counter() - started, "inside": timer.seconds}

        return run

    def fit(model, dataset, **kwargs):
        model.fit(dataset, shuffle=False, **kwargs)

    ways = {"project fit": way(fit), "project graph loop": way(fit_loop)}
    return ways, (np.asarray(xs), np.asarray(ys))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="steps per timed call")
    parser.add_argument("--rounds", type=int, default=5, help="timed calls per way (median)")
    parser.add_argument("--pml-python", default=PML_PYTHON, help="Python with torch and PML")
    parser.add_argument("--pml-threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--data-dir", default=None, help="default: $ONESHOT_DATA_DIR")
    parser.add_argument("--out", default="results/benchmarks/pml_step.txt")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny and fast")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.rounds = 3, 1
    return args


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; write and return the text table."""
    args = parse_args(argv)
    started = time.perf_counter()
    p = 8 if args.quick else HEADLINE_P
    train = load_train(DEFAULT_NETWORK.image_size, args.data_dir)
    ways, (xs, ys) = project_ways(train, p)
    pml, missing = None, None
    with tempfile.TemporaryDirectory() as tmp:
        import numpy as np

        batches_file = Path(tmp) / "batches.npz"
        np.savez(batches_file, x=xs, y=ys)
        if Path(args.pml_python).exists():
            pml = PmlProcess(args.pml_python, batches_file, args.pml_threads)
            ways["pml"] = pml.run
        else:
            missing = f"pml: no {args.pml_python} (see benchmarks/pml_step.py to make it)"
        try:
            times: dict[str, list[dict[str, float]]] = {way: [] for way in ways}
            for round_ in range(1 + args.rounds):  # round 0: warm-up (tracing)
                for name, run in ways.items():
                    measured = run(args.steps)
                    if round_:
                        times[name].append(measured)
                print(f"  round {round_}/{args.rounds} done", flush=True)
        finally:
            if pml is not None:
                pml.close()
    return write_table(table(args, argv, p, times, pml, missing, started), args.out)


def table(args, argv, p, times, pml, missing, started) -> str:
    import tensorflow as tf

    b = p * K
    rates = {
        n: b * args.steps / statistics.median(t["wall"] for t in ts) for n, ts in times.items()
    }
    lines = [
        *header(
            "bench_pml_step.py",
            argv if argv is not None else sys.argv[1:],
            time.perf_counter() - started,
        ),  # fmt: skip
        f"# {cpu_line()}",
        f"# TensorFlow {tf.__version__}: {threads_line()}",
        "# "
        + (
            missing
            or "PyTorch {torch}, pytorch-metric-learning {pytorch_metric_learning}: "
            "threads {threads}, inter-op threads {interop_threads}, CPU capability "
            "{cpu_capability}, mkldnn {mkldnn}".format(**pml.info)
        ),  # fmt: skip
        f"# conv4 width 64, embedding 64, 28x28, batch-hard triplet (margin 0.2, mean), Adam, "
        f"P x K = {p} x {K} = {b}, 8 real Omniglot batches in memory; {args.rounds} timed calls "
        f"of {args.steps} steps per way after a warm-up call, ways taking turns",
        f"{'way':20s} {'images/s':>9s} {'in steps':>9s} {'ms/step':>8s} {'vs pml':>7s} "
        f"{'calls (s)':s}",
    ]
    for name, ts in times.items():
        wall = statistics.median(t["wall"] for t in ts)
        inside = statistics.median(t["inside"] for t in ts)
        ratio = f"{rates[name] / rates['pml']:7.2f}" if "pml" in rates else f"{'-':>7s}"
        calls = " ".join(f"{t['wall']:.2f}" for t in ts)
        lines.append(
            f"{name:20s} {rates[name]:9.1f} {b * args.steps / inside:9.1f} "
            f"{1000 * wall / args.steps:8.1f} {ratio} {calls}"
        )
    if missing:
        lines.append(missing)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
