"""Training throughput under tf.distribute on one machine, and the all-gather's share of a step.

    python benchmarks/bench_distributed.py [--steps 30] [--repeats 3] [--quick] [--setups 1,2,...]
                                           [--out results/benchmarks/distributed.txt]

The README's online recipe (conv4 width 64, 64-d, batch-hard triplets with margin 0.2, Adam,
P x K = 8 x 16 = 128 real MNIST training images a step), trained in fresh processes:

- ``1 process, fit``: ``model.fit``, the path every run without a strategy takes;
- ``1 process, distributed step``: the runner's distributed step
  (``oneshot.training.distributed.DistributedStep``) under the default strategy: its own cost;
- ``2 logical devices``: ``MirroredStrategy`` over the CPU split in two
  (``ONESHOT_CPU_DEVICES=2``), one process;
- ``2 worker processes``: ``MultiWorkerMirroredStrategy``, two processes on localhost ports,
  one TensorFlow thread each (the machine has 2 cores);

each with global mining (``oneshot.losses.GlobalBatchLoss``: the embeddings and labels of all
replicas gathered before mining) and without (each replica mines its 4 x 16 slice).

Columns: ``images/s`` (global batch / median seconds per step over ``--repeats`` chunks of
``--steps`` steps after one warm-up chunk), ``ms/step``, and ``gather ms``: the median time of
one all-gather of a replica's embeddings (64 x 64 float32) and labels alone (200 calls), with
its share of a step. On 2 cores no speed-up is expected: the point is that the path works and
what it costs. Output: ``results/benchmarks/distributed.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # measure.py
from measure import header, write_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
P, K, EMBEDDING = 8, 16, 64  # MNIST has 10 classes; P is a multiple of the 2 replicas
SETUPS = (  # (label, strategy, global mining, processes)
    ("1 process, fit", "none", False, 1),
    ("1 process, distributed step", "default", False, 1),
    ("2 logical devices, global mining", "mirrored", True, 1),
    ("2 logical devices, per-replica mining", "mirrored", False, 1),
    ("2 worker processes, global mining", "multiworker", True, 2),
    ("2 worker processes, per-replica mining", "multiworker", False, 2),
)


def child(strategy_name: str, global_mining: bool, steps: int, repeats: int) -> dict:
    """One measurement in this (fresh) process; returns the numbers."""
    from oneshot.training.distributed import get_strategy, use_logical_cpus

    if strategy_name == "multiworker":
        strategy = get_strategy("multiworker")  # before any other TensorFlow operation
    elif strategy_name == "mirrored":
        use_logical_cpus(2)
        strategy = get_strategy("mirrored")
    import keras
    import tensorflow as tf

    from oneshot.data import load_mnist
    from oneshot.data.samplers import pk_dataset
    from oneshot.losses import GlobalBatchLoss, TripletMarginLoss
    from oneshot.miners import BatchHardMiner
    from oneshot.models import build_online
    from oneshot.models.networks import build_network
    from oneshot.training.distributed import DistributedStep, replica_slices

    if strategy_name in ("none", "default"):
        strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    train = load_mnist("train")
    dataset = pk_dataset(train.images, train.labels, p=P, k=K, seed=0)
    with strategy.scope():
        loss = TripletMarginLoss(margin=0.2, miner=BatchHardMiner())
        if global_mining:
            loss = GlobalBatchLoss(loss)
        network = build_network("conv4", (28, 28, 1), EMBEDDING, width=64)
        model = build_online(network, loss=loss, optimizer=keras.optimizers.Adam(1e-3))
    if strategy_name == "none":
        from measure import time_fit

        seconds = time_fit(model, dataset, steps, repeats)
    else:
        step = DistributedStep(model, strategy)
        iterator = iter(replica_slices(dataset, strategy))
        chunks = []
        for _ in range(1 + repeats):
            start = time.perf_counter()
            for _ in range(steps):
                step(iterator)  # returns a float: the step has finished
            chunks.append((time.perf_counter() - start) / steps)
        seconds = statistics.median(chunks[1:])
    result = {"seconds": seconds, "replicas": strategy.num_replicas_in_sync}
    if strategy.num_replicas_in_sync > 1:
        per_replica = P * K // strategy.num_replicas_in_sync

        def gather():
            context = tf.distribute.get_replica_context()
            embeddings = tf.random.stateless_normal((per_replica, EMBEDDING), (1, 2))
            labels = tf.range(per_replica)
            return context.all_gather([embeddings, labels], axis=0)[0][0, 0]

        call = tf.function(lambda: strategy.reduce("SUM", strategy.run(gather), axis=None))
        times = []
        for i in range(210):
            start = time.perf_counter()
            float(call())
            if i >= 10:
                times.append(time.perf_counter() - start)
        result["gather_seconds"] = statistics.median(times)
    return result


def measure(strategy: str, global_mining: bool, processes: int, args) -> dict:
    """Run one setup in fresh processes; the first process's numbers."""
    base = [sys.executable, __file__, "--child", strategy, str(int(global_mining)),
            "--steps", str(args.steps), "--repeats", str(args.repeats)]  # fmt: skip
    from oneshot.training.distributed import free_ports, local_tf_config

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ports = free_ports(processes)
    started = []
    for index in range(processes):
        extra = dict(env)
        if processes > 1:
            extra["TF_CONFIG"] = local_tf_config(ports, index)
            base_threads = ["--threads", "1"]
        else:
            base_threads = []
        started.append(subprocess.Popen([*base, *base_threads], env=extra, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE))  # fmt: skip
    results = []
    for process in started:
        out, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"{strategy} failed:\n{err[-3000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results[0]


def main(argv: list[str] | None = None) -> str | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="steps per timed chunk")
    parser.add_argument("--repeats", type=int, default=3, help="timed chunks (median)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 3 steps, 1 chunk")
    parser.add_argument(
        "--setups", default=None, help="comma-separated row numbers (1-6) to run (default: all)"
    )
    parser.add_argument("--out", default="results/benchmarks/distributed.txt")
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        if args.threads:
            from measure import set_threads

            set_threads(args.threads)
        strategy, global_mining = args.child[0], args.child[1] == "1"
        print(json.dumps(child(strategy, global_mining, args.steps, args.repeats)))
        return None
    if args.quick:
        args.steps, args.repeats = 3, 1
    chosen = SETUPS
    if args.setups is not None:
        try:
            chosen = [SETUPS[int(n) - 1] for n in args.setups.split(",")]
            if any(int(n) < 1 for n in args.setups.split(",")):
                raise IndexError
        except (ValueError, IndexError):
            parser.error(f"--setups takes row numbers 1-{len(SETUPS)}. Received: {args.setups}")
    started = time.perf_counter()
    rows = []
    for label, strategy, global_mining, processes in chosen:
        result = measure(strategy, global_mining, processes, args)
        seconds = result["seconds"]
        gather = result.get("gather_seconds")
        rows.append((label, result["replicas"], P * K / seconds, 1000 * seconds, gather))
        print(f"{label:40s} {P * K / seconds:8.0f} images/s", flush=True)
    lines = header("bench_distributed.py", argv if argv is not None else sys.argv[1:],
                   time.perf_counter() - started)  # fmt: skip
    lines += [
        f"# conv4 width 64, 64-d, batch-hard triplets, P x K = {P} x {K} real MNIST images a "
        f"step; median of {args.repeats} chunks of {args.steps} steps after a warm-up chunk; "
        "worker processes run 1 thread each",
        "",
        f"{'setup':40s} {'replicas':>8s} {'images/s':>9s} {'ms/step':>8s} {'gather ms':>9s} "
        f"{'gather share':>12s}",
    ]
    for label, replicas, images, ms, gather in rows:
        share = "" if gather is None else f"{100 * gather * 1000 / ms:11.1f}%"
        shown = "" if gather is None else f"{1000 * gather:9.2f}"
        lines.append(f"{label:40s} {replicas:8d} {images:9.0f} {ms:8.1f} {shown:>9s} {share:>12s}")
    return write_table("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
