"""What the benchmark scripts share: thread settings, timings (medians of calls, of ``model.fit``
epochs, of hand-written loops), peak resident memory, fresh processes, the table header and output.

Imported by the scripts of this folder (``python benchmarks/NAME.py`` puts the folder on the path).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def set_threads(threads: int) -> None:
    """TensorFlow intra/inter-op threads (before TensorFlow starts; ignored after, with a note).

    ``threads <= 0`` keeps TensorFlow's defaults (all cores).
    """
    import tensorflow as tf

    if threads <= 0:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as error:  # already initialised (e.g. inside pytest)
        print(f"  note: thread counts not changed ({error})", flush=True)


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rss_kb(field: str) -> int:
    """A memory field of ``/proc/self/status`` in kB (``VmRSS``, ``VmHWM`` = peak RSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def reset_peak() -> int:
    """Reset Linux's peak-RSS mark (``/proc/self/clear_refs`` <- 5); return the RSS in kB."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return rss_kb("VmRSS")


def peak_since_mb(base_kb: int) -> float:
    """Peak RSS since the last :func:`reset_peak` above ``base_kb``, in MB."""
    return (rss_kb("VmHWM") - base_kb) / 1024.0


def header(script: str, argv: list[str], wall_seconds: float) -> list[str]:
    """The first two lines of a benchmark table: the command, then date, machine, TensorFlow,
    threads, load average and wall time (the machine may be shared: the load says how much)."""
    import tensorflow as tf

    threads = tf.config.threading.get_intra_op_parallelism_threads()
    return [
        "# " + " ".join(["python", f"benchmarks/{script}", *argv]),
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, intra-op threads "
        f"{threads or 'default'}; load average at the end {os.getloadavg()[0]:.1f}; "
        f"wall time {wall_seconds / 60:.1f} min",
    ]


def cpu_line() -> str:
    """The processor model and the vector instruction sets that decide its speed (from
    ``/proc/cpuinfo``): ``AMD EPYC; avx2 yes, avx512f yes, avx512_bf16 yes; 2 cores``."""
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    shown = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in VECTOR_FLAGS)
    return f"{model}; {shown}; {os.cpu_count()} cores"


VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")


def threads_line() -> str:
    """TensorFlow's thread settings and oneDNN switch as this process runs them."""
    import tensorflow as tf

    intra = tf.config.threading.get_intra_op_parallelism_threads() or "default"
    inter = tf.config.threading.get_inter_op_parallelism_threads() or "default"
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (on)")
    return f"intra-op threads {intra}, inter-op threads {inter}, TF_ENABLE_ONEDNN_OPTS {onednn}"


def with_threads(dataset, threads: int):
    """Limit a tf.data pipeline's private thread pool to ``threads`` (0: unchanged)."""
    import tensorflow as tf

    if threads <= 0:
        return dataset
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    return dataset.with_options(options)


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall time of every epoch (an epoch = ``steps`` steps; logs are synced at its end)."""

        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._start = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def time_fit(model, dataset, steps: int, repeats: int) -> float:
    """Median seconds per step of ``model.fit``: 1 warm-up epoch + ``repeats`` epochs of
    ``steps`` steps."""
    timer = _epoch_timer()
    model.fit(
        dataset,
        epochs=1 + repeats,
        steps_per_epoch=steps,
        verbose=0,
        callbacks=[timer],
        shuffle=False,  # as the runner: the samplers already draw at random
    )
    return statistics.median(timer.seconds[1:]) / steps


def time_loop(step, batches, steps: int, repeats: int) -> float:
    """Median seconds per step of a hand-written loop ``step(*batch)``: 1 warm-up chunk +
    ``repeats`` chunks of ``steps`` steps, cycling through ``batches``."""
    chunks = []
    for chunk in range(1 + repeats):
        start = time.perf_counter()
        for i in range(steps):
            loss = step(*batches[(chunk * steps + i) % len(batches)])
        loss.numpy()  # wait for the chunk's last step
        chunks.append((time.perf_counter() - start) / steps)
    return statistics.median(chunks[1:])


def start_fresh(script: str, args: list[str]) -> tuple[list[str], subprocess.Popen]:
    """Start ``python script *args`` in a fresh process (its stdout's last line is JSON)."""
    cmd = [sys.executable, script, *args]
    return cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_fresh(started: tuple[list[str], subprocess.Popen]) -> dict:
    """Wait for a process of :func:`start_fresh`; return the JSON it printed last."""
    cmd, proc = started
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def write_table(text: str, out: str | Path) -> str:
    """Print the table, write it to ``out`` (folders created) and return it."""
    print(text)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text + "\n")
    return text
