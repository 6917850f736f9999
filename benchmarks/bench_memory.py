"""Peak memory (RSS) of training the default network against the batch size, the project's
``model.fit`` and the plain-TensorFlow reference step, in a fresh process per row.

    python benchmarks/bench_memory.py [--sizes 128,512,1024] [--paths fit,plain] [--steps 3]
                                      [--threads N] [--quick] [--data-dir DIR]
                                      [--out results/benchmarks/memory.txt]

Needs the real data (``export ONESHOT_DATA_DIR=...``). The default network (conv4 width 64 at
28x28, online batch-hard) at P x K = B (K = 4). Each row runs in a fresh process (this script
with a hidden option): after the data, model and input are built, Linux's peak-RSS mark is reset
(``/proc/self/clear_refs`` <- 5), then ``--steps`` steps run (the first one traces). The child
reads its own ``/proc/self/status`` (not ``resource.getrusage``, whose ``ru_maxrss`` of a child
survives ``execve`` and would count the parent). ``peak MB`` = ``VmHWM`` of the whole process
(what must fit in RAM); ``extra MB`` = ``VmHWM`` minus ``VmRSS`` before the steps (what training
itself adds). Paths: ``fit`` (the project's ``model.fit`` on ``pk_dataset``) and ``plain``
(``reference_step.py``'s ``keras-layers`` step on 2 in-memory batches).

``--quick`` (smoke test): ``fit`` at B = 32, 2 steps. ``--threads N`` sets TensorFlow's threads
and the tf.data private thread pool; 0 keeps TensorFlow's defaults.

Output committed as ``results/benchmarks/memory.txt`` (formerly table 3 of ``training.txt``,
written by ``bench_training.py``, which this file replaces).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # measure.py and friends
from measure import (  # noqa: E402
    finish_fresh,
    header,
    reset_peak,
    rss_kb,
    set_threads,
    start_fresh,
    with_threads,
    write_table,
)
from reference_step import reference_step  # noqa: E402
from training_setups import (  # noqa: E402
    DEFAULT_NETWORK,
    K,
    load_train,
    memory_batches,
    run_config,
)

PATHS = ("fit", "plain")


def probe(path: str, batch: int, steps: int, threads: int, data_dir: str | None) -> dict:
    """(Fresh process.) Peak RSS while training the default network at P x K = ``batch``."""
    import keras

    from oneshot.training.setup import build_dataset, build_model

    keras.utils.set_random_seed(0)
    train = load_train(DEFAULT_NETWORK.image_size, data_dir)
    p = batch // K
    if path == "plain":
        step = reference_step("keras-layers", DEFAULT_NETWORK.image_size)
        batches = memory_batches(train, p, n=2)
        base = reset_peak()
        for i in range(steps):
            loss = step(*batches[i % len(batches)])
        loss.numpy()
    else:
        config = run_config(DEFAULT_NETWORK, "online", p=p)
        model = build_model(config)
        dataset = with_threads(build_dataset(config, model, train, seed=0), threads)
        base = reset_peak()
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    peak = rss_kb("VmHWM")
    return {"peak_mb": peak / 1024.0, "extra_mb": (peak - base) / 1024.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,512,1024", help="P x K batch sizes")
    parser.add_argument("--paths", default=",".join(PATHS), help="fit and/or plain")
    parser.add_argument("--steps", type=int, default=3, help="training steps per process")
    parser.add_argument("--threads", type=int, default=0, help="TF threads (0: TF default)")
    parser.add_argument("--data-dir", default=None, help="default: $ONESHOT_DATA_DIR")
    parser.add_argument("--out", default="results/benchmarks/memory.txt")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny and fast")
    parser.add_argument("--_probe", help=argparse.SUPPRESS)  # fresh process: PATH:B
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.steps, args.paths = "32", 2, "fit"
    return args


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; write and return the text table."""
    args = parse_args(argv)
    set_threads(args.threads)
    if args._probe:
        path, b = args._probe.split(":")
        print(json.dumps(probe(path, int(b), args.steps, args.threads, args.data_dir)))
        return ""
    sizes = [int(s) for s in args.sizes.split(",") if s]
    paths = [m for m in args.paths.split(",") if m]
    if any(m not in PATHS for m in paths):
        raise ValueError(
            f"Invalid value for `--paths`. Expected some of {PATHS}. Received: {paths}"
        )
    if any(b % K or b < 2 * K for b in sizes):
        raise ValueError(
            f"Invalid value for `--sizes`: each must be a multiple of {K} and >= {2 * K}. "
            f"Received: {sizes}"
        )
    started = time.perf_counter()
    common = ["--steps", str(args.steps), "--threads", str(args.threads)]
    common += ["--data-dir", args.data_dir] if args.data_dir else []
    memory = {}
    for path in paths:
        for b in sizes:  # one after the other: a neighbour would share the machine's RAM
            memory[path, b] = finish_fresh(
                start_fresh(__file__, ["--_probe", f"{path}:{b}", *common])
            )
            print(f"  {path:6s} {b:5d} {memory[path, b]['peak_mb']:9.1f} MB", flush=True)
    command = sys.argv[1:] if argv is None else argv
    lines = [
        *header("bench_memory.py", command, time.perf_counter() - started),
        "",
        f"## peak memory, conv4 width 64 at 28x28, online batch-hard, P x K = B (K = {K}); "
        f"fresh process per row, {args.steps} steps",
        "# peak MB: VmHWM of the process; extra MB: VmHWM after reset minus VmRSS before steps",
        f"{'path':6s} {'B':>5s} {'peak MB':>9s} {'extra MB':>9s}",
    ]
    for (path, b), m in memory.items():
        lines.append(f"{path:6s} {b:5d} {m['peak_mb']:9.1f} {m['extra_mb']:9.1f}")
    return write_table("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
