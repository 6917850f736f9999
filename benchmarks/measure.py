"""What the benchmark scripts share: thread settings, median timings, peak resident memory.

Imported by the scripts of this folder (``python benchmarks/NAME.py`` puts the folder on the path).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable


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
