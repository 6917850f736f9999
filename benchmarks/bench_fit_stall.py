"""Where ``model.fit``'s time goes, call by call: ``fit`` against a graph loop, time inside the
epochs against outside them, under several thread and oneDNN settings.

    python benchmarks/bench_fit_stall.py [--calls 6] [--steps 20] [--epochs 4]
        [--settings default,threads=1,threads=2,inter=1,onednn=0,pool=1] [--quick]
        [--data-dir DIR] [--out results/benchmarks/fit_stall.txt]

Needs the real data (``export ONESHOT_DATA_DIR=...``): Omniglot background at 28x28. The model is
the default network of ``bench_throughput.py`` (conv4 width 64, embedding 64, online batch-hard,
P x K = 32 x 4 = 128 images per step) on ``pk_dataset``, the runner's input. Every setting runs
in a fresh process (threads and oneDNN are fixed when TensorFlow starts):

- ``default``: TensorFlow's defaults; ``threads=N``: intra- and inter-op threads N;
  ``inter=1``: one inter-op thread; ``onednn=0``: ``TF_ENABLE_ONEDNN_OPTS=0``; ``pool=1``: the
  input pipeline's private thread pool of 1 thread (``tf.data.Options.threading``).

In each process the ways of training ``--steps`` steps take turns, call after call (A B C D A B
C D ...), each on its own model and input, so that a load change hits them alike:

- ``fit``: ``model.fit(dataset, epochs=1, steps_per_epoch=steps)``, a new ``fit`` call (and
  dataset iterator) per call, callbacks on epoch ends only (Keras then dispatches batch ends to a
  thread);
- ``fit+batch-callback``: the same with a batch-end callback, as the runner's ``StopOnNaN``
  (Keras then reads every step's loss back before the next step);
- ``fit+steps-per-exec``: ``fit`` with ``steps_per_execution`` = steps (one graph call per
  epoch, Keras's own ``tf.while_loop``);
- ``fit+no-autotune``: ``fit`` on the input without tf.data's autotuning
  (``Options.autotune.enabled`` False), as the graph loop reads it;
- ``graph loop``: ``oneshot.training.loop.fit_loop``, the runner's default, a new call (and
  iterator) per call;
- ``tf.function loop``: one ``tf.function`` running ``tf.range(steps)`` steps of
  ``model.train_step`` on ``next(iterator)`` of one iterator kept across calls (the floor);
- ``multi-epoch fit``: one ``fit`` of ``--epochs`` epochs of ``steps`` steps (as the runner calls
  it), its time per epoch.

Columns: ``wall`` = median seconds per call (min-max); ``in epochs`` = the part between
``on_epoch_begin`` and ``on_epoch_end`` (the tf.function loop has no epochs: all of it);
``outside`` = the median of wall - in epochs (setting up ``fit``, its iterator, tearing both
down); ``ms/step`` = in epochs / steps; ``step max`` = the longest gap between two batch ends (``fit+batch-callback``: a stall of one
step shows there). ``snapped`` = the calls whose wall time is within 1% of
a mark 10 ms x (2^n - 1) (0.63, 1.27, 2.55, 5.11, 10.23 s ...), where a ``fit`` call ends
that waited for tf.data's autotuning thread when dropping its iterator (a call whose steps
end near a mark counts too: compare with ``in epochs``). ``cpu/wall`` = the process's
CPU seconds (all threads) per wall second of a call: threads that spin burn a CPU quota. Each
setting's line names what could quantise or throttle time on a VM: the CPU steal share during
its calls, the drift between ``time.time`` and ``time.perf_counter``, the clock source, the
cgroup CPU quota and its throttled periods.

``--quick``: P x K = 8 x 4, 3 steps, 1 call, the ``default`` setting only (a smoke test).
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
sys.path.insert(0, str(Path(__file__).resolve().parent))  # measure.py and friends
from measure import cpu_line, header, threads_line, write_table  # noqa: E402
from training_setups import DEFAULT_NETWORK, HEADLINE_P, K, load_train, run_config  # noqa: E402

SETTINGS = ("default", "threads=1", "threads=2", "inter=1", "onednn=0", "pool=1")
WAYS = (
    "fit",
    "fit+batch-callback",
    "fit+steps-per-exec",
    "fit+no-autotune",
    "graph loop",
    "tf.function loop",
    "multi-epoch fit",
)
AUTOTUNE_START = 0.010  # seconds: the first wake-up of tf.data's autotuning thread


def setting_env(setting: str) -> dict[str, str]:
    """The environment of a fresh process for ``setting`` (threads are set in the process)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    if setting == "onednn=0":
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    return env


def apply_setting(setting: str):
    """Thread settings of ``setting`` in this fresh process; returns a dataset transform."""
    import tensorflow as tf

    name, _, value = setting.partition("=")
    if name == "threads":
        tf.config.threading.set_intra_op_parallelism_threads(int(value))
        tf.config.threading.set_inter_op_parallelism_threads(int(value))
    elif name == "inter":
        tf.config.threading.set_inter_op_parallelism_threads(int(value))
    elif name == "pool":
        options = tf.data.Options()
        options.threading.private_threadpool_size = int(value)
        options.threading.max_intra_op_parallelism = 1
        return lambda dataset: dataset.with_options(options)
    elif setting not in ("default", "onednn=0"):
        raise ValueError(
            f"Invalid value for `--settings`. Expected names from {SETTINGS}. Received: {setting!r}"
        )
    return lambda dataset: dataset


def timer():
    import keras

    class Timer(keras.callbacks.Callback):
        """Epoch spans and, with ``batches``, batch-end times (which make Keras sync)."""

        def __init__(self, batches: bool) -> None:
            super().__init__()
            self.epochs: list[float] = []
            self.ends: list[float] = []
            self._start = 0.0
            if batches:
                self.on_train_batch_end = self._batch_end

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()
            if "on_train_batch_end" in vars(self):
                self.ends.append(self._start)

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append(time.perf_counter() - self._start)

        def _batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    return Timer


def read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "-"


def cpu_ticks() -> tuple[int, int]:
    """(all, steal) jiffies of the machine (``/proc/stat``), for the steal share of a run."""
    fields = [int(v) for v in read("/proc/stat").splitlines()[0].split()[1:]]
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


def host_line() -> str:
    """What can quantise or throttle time on a VM: clock source, CPU quota, throttling."""
    quota = read("/sys/fs/cgroup/cpu.max")  # cgroup v2
    if quota == "-":  # cgroup v1
        quota = f"{read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us')}/"
        quota += read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    stat = read("/sys/fs/cgroup/cpu.stat")
    stat = read("/sys/fs/cgroup/cpu/cpu.stat") if stat == "-" else stat
    throttled = dict(line.split() for line in stat.splitlines() if len(line.split()) == 2)
    return (
        f"clock source {read('/sys/devices/system/clocksource/clocksource0/current_clocksource')}, "
        f"cgroup CPU quota {quota}, throttled periods {throttled.get('nr_throttled', '-')}"
    )


def measure_setting(setting: str, p: int, steps: int, calls: int, epochs: int, data_dir):
    """Every way's calls in this process, interleaved: {way: [{wall, inside, step_max}]}."""
    transform = apply_setting(setting)
    import keras
    import tensorflow as tf

    from oneshot.training.loop import NO_AUTOTUNE, fit_loop
    from oneshot.training.setup import build_dataset, build_model

    train = load_train(DEFAULT_NETWORK.image_size, data_dir)
    config = run_config(DEFAULT_NETWORK, "online", p=p)
    keras.utils.set_random_seed(0)
    Timer = timer()
    models = {way: build_model(config) for way in WAYS}
    models["fit+steps-per-exec"].steps_per_execution = steps  # as compile(...) sets it
    data = {way: transform(build_dataset(config, models[way], train, seed=0)) for way in WAYS}
    data["fit+no-autotune"] = data["fit+no-autotune"].with_options(NO_AUTOTUNE)
    plain_model = models["tf.function loop"]
    plain_iterator = iter(data["tf.function loop"])

    @tf.function
    def plain(n):
        loss = tf.constant(0.0)
        for _ in tf.range(n):
            loss = plain_model.train_step(next(plain_iterator))["loss"]
        return loss

    def run(way: str) -> dict[str, float]:
        model, dataset = models[way], data[way]
        callback = Timer(batches=way == "fit+batch-callback")
        cpu, started = time.process_time(), time.perf_counter()
        if way == "tf.function loop":
            plain(tf.constant(steps)).numpy()
        elif way == "graph loop":
            fit_loop(model, dataset, initial_epoch=0, epochs=1, steps_per_epoch=steps,
                     callbacks=[callback], verbose=0)  # fmt: skip
        else:
            n = epochs if way == "multi-epoch fit" else 1
            model.fit(dataset, epochs=n, steps_per_epoch=steps, callbacks=[callback], verbose=0,
                      shuffle=False)  # fmt: skip
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        inside = sum(callback.epochs) if callback.epochs else wall
        gaps = [b - a for a, b in zip(callback.ends, callback.ends[1:], strict=False)]
        return {"wall": wall, "inside": inside, "cpu": cpu, "epochs": max(len(callback.epochs), 1),
                "step_max": max(gaps) if len(gaps) > 1 else float("nan")}  # fmt: skip

    for way in WAYS:  # warm-up: tracing
        run(way)
    results: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
    ticks, clock, wall = cpu_ticks(), time.time(), time.perf_counter()
    for _ in range(calls):
        for way in WAYS:
            results[way].append(run(way))
    total, steal = (b - a for a, b in zip(ticks, cpu_ticks(), strict=True))
    drift = (time.time() - clock) - (time.perf_counter() - wall)
    return {"results": results, "threads": threads_line(), "load": os.getloadavg()[0],
            "steal": 100 * steal / max(total, 1), "drift": drift, "host": host_line()}  # fmt: skip


def snapped(wall: float) -> bool:
    """Whether ``wall`` seconds is within 1% of a mark 10 ms x (2^n - 1), n >= 6 (0.63, 1.27,
    2.55, 5.11, 10.23 s ...): where a call ends that waited for tf.data's autotuning thread."""
    marks = [AUTOTUNE_START * (2**n - 1) for n in range(6, 16)]
    return any(abs(wall - mark) < 0.01 * mark for mark in marks)


def rows(setting: str, measured: dict, steps: int) -> list[str]:
    lines = [
        f"## {setting}: {measured['threads']}; load {measured['load']:.1f}; CPU steal "
        f"{measured['steal']:.1f}%; time.time - perf_counter over the calls "
        f"{1000 * measured['drift']:+.1f} ms; {measured['host']}"
    ]
    for way, calls in measured["results"].items():
        walls = [c["wall"] for c in calls]
        inside = statistics.median(c["inside"] for c in calls)
        outside = statistics.median(c["wall"] - c["inside"] for c in calls)
        wall = statistics.median(walls)
        per_call_steps = steps * calls[0]["epochs"]
        step_max = max(c["step_max"] for c in calls)
        cpu = statistics.median(c["cpu"] for c in calls)
        lines.append(
            f"{way:20s} {len(calls):5d} {wall:7.2f} ({min(walls):.2f}-{max(walls):.2f}) "
            f"{inside:9.2f} {outside:8.2f} {1000 * inside / per_call_steps:8.1f} "
            f"{'-' if step_max != step_max else f'{1000 * step_max:.0f}':>9s} "
            f"{sum(snapped(w) for w in walls):4d}/{len(walls)} {cpu / wall:7.2f}"
        )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=6, help="timed calls per way")
    parser.add_argument("--steps", type=int, default=20, help="steps per call (per epoch)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the 'multi-epoch fit' way")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--data-dir", default=None, help="default: $ONESHOT_DATA_DIR")
    parser.add_argument("--out", default="results/benchmarks/fit_stall.txt")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny and fast")
    parser.add_argument("--_setting", help=argparse.SUPPRESS)  # a fresh process: one setting
    parser.add_argument("--_p", type=int, default=HEADLINE_P, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.calls, args.epochs, args.settings, args._p = 3, 1, 2, "default", 8
    args.settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    for setting in args.settings:
        if setting not in SETTINGS:
            parser.error(f"--settings: {setting!r} is not one of {', '.join(SETTINGS)}")
    return args


def main(argv: list[str] | None = None) -> str:
    """Run every setting in a fresh process; write and return the text table."""
    args = parse_args(argv)
    if args._setting:
        measured = measure_setting(args._setting, args._p, args.steps, args.calls, args.epochs,
                                   args.data_dir)  # fmt: skip
        print(json.dumps(measured))
        return ""
    started = time.perf_counter()
    lines = []
    for setting in args.settings:
        cmd = [sys.executable, __file__, "--_setting", setting, "--_p", str(args._p),
               "--steps", str(args.steps), "--calls", str(args.calls),
               "--epochs", str(args.epochs)]  # fmt: skip
        cmd += ["--data-dir", args.data_dir] if args.data_dir else []
        done = subprocess.run(cmd, capture_output=True, text=True, env=setting_env(setting))
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        lines += rows(setting, measured, args.steps)
        print("\n".join(lines[-len(WAYS) - 1 :]), flush=True)
    import tensorflow as tf

    command = sys.argv[1:] if argv is None else argv
    text = [
        *header("bench_fit_stall.py", command, time.perf_counter() - started),
        f"# {cpu_line()}; TensorFlow {tf.__version__}",
        f"# conv4 width 64, embedding 64, 28x28, online batch-hard, P x K = {args._p} x {K}, "
        f"pk_dataset; {args.steps} steps per call, {args.calls} calls per way (after a warm-up "
        f"call), ways interleaved; 'multi-epoch fit' = one fit of {args.epochs} epochs",
        f"# {'way':18s} {'calls':>5s} {'wall s (min-max)':>18s} {'in epochs':>9s} "
        f"{'outside':>8s} {'ms/step':>8s} {'step max':>9s} snapped cpu/wall",
        *lines,
    ]
    return write_table("\n".join(text), args.out)


if __name__ == "__main__":
    main()
