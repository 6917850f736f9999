"""The few helpers the notebooks in ``notebooks/`` need, so the notebooks stay thin.

- :func:`quick_mode`: ``ONESHOT_QUICK=1`` (set in CI) shrinks every notebook to about a minute.
- :func:`get_run`: load the committed run ``results/<experiment>/<run>/`` when it exists and
  matches the asked config, else train it with :func:`oneshot.training.runner.train_run` into
  ``runs/notebooks/`` (gitignored), so a notebook works on a fresh clone either way.
- :func:`eval_split`: the held-out split (a small subset in quick mode).
- :func:`nway_vs_n`, :func:`nearest_neighbours`: small loops over ``oneshot.evaluation``.
- :func:`summary_table`, :func:`show`, and three figures the package plots do not draw
  (images, distance histograms, error bars against published figures).

Example:
>>> from oneshot import walkthrough
>>> from oneshot.experiments import get_experiment
>>> config = get_experiment("mnist-triplet").runs[0]
>>> run = walkthrough.get_run(config, "mnist-triplet", quick=True)  # doctest: +SKIP
>>> print(run.describe())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

import oneshot
from oneshot.data.datasets import LabelledImages
from oneshot.evaluation import OneShotResult, nway_accuracy
from oneshot.experiments import RunConfig
from oneshot.inference import Scorer
from oneshot.runs import headline_metrics, read_history
from oneshot.training.runner import HISTORY_FILE, MODEL_FILE, train_run
from oneshot.training.setup import TEST_SPLIT, load_split

QUICK_ENV = "ONESHOT_QUICK"
QUICK_STEPS = 10
# Fields a committed run may differ in and still be "the same run" (the ones the training
# command line overrides); the notebooks report the committed values.
BUDGET_FIELDS = ("steps", "log_every", "learning_rate", "final_learning_rate")


def quick_mode() -> bool:
    """True when ``$ONESHOT_QUICK`` is set to 1/true/yes/on (CI): tiny runs, small evaluations."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def repo_root(start: str | Path | None = None) -> Path:
    """The checkout holding ``pyproject.toml`` and ``oneshot/``, searched upwards from ``start``
    (default: the working directory), else the folder above the installed package."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "oneshot").is_dir():
            return folder
    return Path(oneshot.__file__).resolve().parents[1]


def results_dir() -> Path:
    """``results/`` of the checkout: the committed runs."""
    return repo_root() / "results"


def scratch_dir(quick: bool) -> Path:
    """Where notebooks train (gitignored ``runs/``), never ``results/``."""
    return repo_root() / "runs" / ("notebooks-quick" if quick else "notebooks")


def quick_config(config: RunConfig, steps: int = QUICK_STEPS) -> RunConfig:
    """``config`` shrunk for quick mode: at most ``steps`` steps, small candidate pools."""
    steps = min(steps, config.steps)
    changes: dict[str, Any] = {"steps": steps, "log_every": max(1, steps // 4)}
    if config.sampler == "hard_batch":
        changes.update(
            candidates=min(config.candidates, 48),
            hardest=min(config.hardest, 8),
            random_extra=min(config.random_extra, 8),
        )
    if config.kind == "online":
        changes.update(classes_per_batch=min(config.classes_per_batch, 16))
    if config.monitor_episodes:
        changes.update(monitor_episodes=min(config.monitor_episodes, 50))
    return dataclasses.replace(config, **changes)


@dataclass
class NotebookRun:
    """A trained model with its config, where it came from and its training log.

    Attributes:
        config: the run's config (for a committed run: its ``config.json``).
        model: the trained Keras model.
        run_dir: the run folder (``results/...`` if committed, else under ``runs/``).
        committed: True when loaded from ``results/``.
        history: ``history.csv`` columns (loss, step, seconds, ...).
        metrics: the committed ``metrics.json`` (full evaluation protocols), or None.
    """

    config: RunConfig
    model: keras.Model
    run_dir: Path
    committed: bool
    history: dict[str, list[float]]
    metrics: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def scorer(self) -> Scorer:
        """The model's :class:`Scorer` (learned metric or the distance it was trained with, and
        the run's test-time shift averaging)."""
        return Scorer.from_model(
            self.model, distance=self.config.eval_distance, shifts=self.config.test_shifts
        )

    @property
    def train_seconds(self) -> float:
        seconds = self.history.get("seconds", [])
        return float(seconds[-1]) if seconds else float("nan")

    def describe(self) -> str:
        """One line: what was trained, how long, and where it comes from."""
        c = self.config
        where = (
            f"loaded from {self.run_dir.relative_to(repo_root())} (committed run)"
            if self.committed
            else f"trained now into {self.run_dir}"
        )
        return (
            f"{c.name}: {c.kind} model, {c.network} -> {c.embedding_dim}-d, {c.dataset} "
            f"{c.image_size}x{c.image_size}, {c.steps} steps ({self.train_seconds:.0f} s of "
            f"training); {where}"
        )


def _setup(config: RunConfig) -> dict[str, Any]:
    values = config.to_dict()
    for key in BUDGET_FIELDS:
        values.pop(key)
    return values


def committed_config(experiment: str, run: str) -> RunConfig | None:
    """The config of ``results/<experiment>/<run>/`` if it holds a finished run, else None."""
    run_dir = results_dir() / experiment / run
    if not (run_dir / MODEL_FILE).exists() or not (run_dir / "config.json").exists():
        return None
    values = json.loads((run_dir / "config.json").read_text())
    values.pop("seed", None)
    return RunConfig.from_dict(values)


def get_run(
    config: RunConfig,
    experiment: str,
    quick: bool | None = None,
    use_committed: bool = True,
    data_dir: str | Path | None = None,
    seed: int = 0,
) -> NotebookRun:
    """The committed run of ``config`` if there is one, else ``config`` trained now.

    A committed run ``results/<experiment>/<config.name>/`` is used (not in quick mode) when
    its config equals ``config`` except for the budget fields (steps, log_every). Otherwise the
    run is trained (quick mode: :func:`quick_config`) into ``runs/notebooks[-quick]/``,
    replacing what was there.

    Args:
        config: the run to get.
        experiment: the experiment folder name under ``results/``.
        quick: quick mode; defaults to :func:`quick_mode`.
        use_committed: allow loading the committed run. Defaults to True.
        data_dir: data folder (default ``$ONESHOT_DATA_DIR``).
        seed: training seed. Defaults to 0.

    Returns:
        A :class:`NotebookRun`.
    """
    quick = quick_mode() if quick is None else quick
    if use_committed and not quick:
        saved = committed_config(experiment, config.name)
        if saved is not None and _setup(saved) == _setup(config):
            run_dir = results_dir() / experiment / config.name
            metrics_file = run_dir / "metrics.json"
            return NotebookRun(
                config=saved,
                model=keras.models.load_model(run_dir / MODEL_FILE),
                run_dir=run_dir,
                committed=True,
                history=read_history(run_dir),
                metrics=json.loads(metrics_file.read_text()) if metrics_file.exists() else None,
            )
    if quick:
        config = quick_config(config)
    run_dir = scratch_dir(quick) / experiment / config.name
    with warnings.catch_warnings():  # Keras notes that tf.data input is not reshuffled by fit
        warnings.filterwarnings("ignore", message=".*shuffle=True.*", category=UserWarning)
        model = train_run(config, run_dir, data_dir=data_dir, seed=seed, overwrite=True)
    history = read_history(run_dir) if (run_dir / HISTORY_FILE).exists() else {}
    return NotebookRun(config, model, run_dir, committed=False, history=history)


def subset(data: LabelledImages, keep: np.ndarray) -> LabelledImages:
    """The images ``keep`` (indices or a boolean mask) of ``data``, with every per-image field."""
    changes = {
        f.name: getattr(data, f.name)[keep]
        for f in dataclasses.fields(data)
        if isinstance(getattr(data, f.name), np.ndarray)
        and len(getattr(data, f.name)) == len(data.labels)
    }
    return dataclasses.replace(data, **changes)


def eval_split(
    config: RunConfig,
    quick: bool | None = None,
    data_dir: str | Path | None = None,
    quick_mnist_images: int = 2000,
    quick_alphabets: int = 2,
) -> LabelledImages:
    """The held-out split of ``config`` (MNIST test, Omniglot evaluation) at its image size.

    Quick mode keeps the first ``quick_mnist_images`` MNIST images, or the ``quick_alphabets``
    Omniglot alphabets with the most characters (so 20-way within-alphabet tasks still exist).
    """
    quick = quick_mode() if quick is None else quick
    data = load_split(config, TEST_SPLIT[config.dataset], data_dir)
    if not quick:
        return data
    if config.dataset == "mnist":
        return subset(data, np.arange(min(quick_mnist_images, len(data))))
    alphabets = np.unique(data.alphabets)
    characters = np.array([len(np.unique(data.labels[data.alphabets == a])) for a in alphabets])
    largest = alphabets[np.argsort(-characters, kind="stable")[:quick_alphabets]]
    return subset(data, np.isin(data.alphabets, largest))


def evaluate_scorers(
    scorers: Mapping[str, Scorer],
    data: LabelledImages,
    dataset: str,
    split: str,
    protocols: Sequence[str] = ("nway", "verification", "cmc"),
    **options: Any,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    """Embed ``data`` once per scorer and run :func:`evaluate_scorer` on it (curves kept).

    Args:
        scorers: name -> scorer.
        data: the held-out images (an ``OmniglotSet`` gives within-alphabet tasks).
        dataset, split: recorded in every protocol.
        protocols: protocol names of ``evaluate_scorer``.
        **options: other ``evaluate_scorer`` arguments (episodes, nway_tasks, lake_runs, ...).

    Returns:
        ``(embeddings, reports)``, both keyed by scorer name.
    """
    import tensorflow as tf

    from oneshot.evaluation.report import evaluate_scorer

    embeddings, reports = {}, {}
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # predict() on several models warns about retracing; harmless here
    for name, scorer in scorers.items():
        start = time.perf_counter()
        embeddings[name] = scorer.embed(data.images)
        embed_seconds = time.perf_counter() - start
        reports[name] = evaluate_scorer(
            scorer,
            data.images,
            data.labels,
            dataset,
            split,
            protocols=list(protocols),
            alphabets=getattr(data, "alphabets", None),
            embeddings=embeddings[name],
            include_curves=True,
            embed_seconds=embed_seconds,
            **options,
        )
    logger.setLevel(level)
    return embeddings, reports


def nway_vs_n(
    scorer: Scorer,
    embeddings: np.ndarray,
    data: LabelledImages,
    ways: Sequence[int],
    episodes: int = 1000,
    k_shot: int = 1,
    within_alphabet: bool = False,
    split: str | None = None,
    seed: int = 0,
) -> dict[int, OneShotResult]:
    """N-way K-shot accuracy for each N in ``ways`` (same seed for every N)."""
    return {
        n: nway_accuracy(
            scorer,
            embeddings,
            data.labels,
            n_way=n,
            k_shot=k_shot,
            episodes=episodes,
            alphabets=getattr(data, "alphabets", None),
            within_alphabet=within_alphabet,
            split=split,
            seed=seed,
        )
        for n in ways
    }


def rank_candidates(
    scorer: Scorer, queries: np.ndarray, candidates: np.ndarray, top: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates of each query embedding, nearest first: ``(order (Q, top), distances (Q, top))``."""
    distances = np.array(scorer.pairwise(queries, candidates), dtype=np.float64)
    order = np.argsort(distances, axis=1, kind="stable")[:, :top]
    return order, np.take_along_axis(distances, order, axis=1)


def nearest_neighbours(
    scorer: Scorer, embeddings: np.ndarray, labels: np.ndarray, queries: np.ndarray, top: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``top`` nearest other images of each query (indices into ``embeddings``).

    Returns:
        ``(indices (Q, top), correct (Q, top), distances (Q, top))``; correct = same class.
    """
    queries = np.asarray(queries)
    order, distances = rank_candidates(scorer, embeddings[queries], embeddings, top + 1)
    keep = order != queries[:, None]  # drop the query itself
    order = np.stack([row[k][:top] for row, k in zip(order, keep, strict=True)])
    distances = np.stack([row[k][:top] for row, k in zip(distances, keep, strict=True)])
    labels = np.asarray(labels)
    return order, labels[order] == labels[queries][:, None], distances


def committed_reports(dataset: str | None = None) -> dict[str, dict[str, Any]]:
    """``metrics.json`` of every committed run evaluated on its dataset's test split, keyed
    ``experiment/run`` (optionally one dataset). Tuning runs, evaluated on validation
    alphabets, are left out: their numbers are not comparable."""
    found = {}
    for path in sorted(results_dir().glob("*/*/metrics.json")):
        report = json.loads(path.read_text())
        if report.get("split") != TEST_SPLIT.get(report.get("dataset")):
            continue
        if dataset is None or report.get("dataset") == dataset:
            found[f"{path.parent.parent.name}/{path.parent.name}"] = report
    return found


def best_committed_run(
    dataset: str = "omniglot", task: str = "20-way 1-shot within-alphabet"
) -> tuple[str, str] | None:
    """``(experiment, run)`` of the committed run with the highest ``task`` accuracy, or None.

    ``task`` is a row name of :func:`oneshot.compare.headline_metrics`. The numbers come from
    the held-out split, so picking on them is a (small) selection on test classes.
    """
    scores = {
        key: headline_metrics(report).get(task, float("-inf"))
        for key, report in committed_reports(dataset).items()
    }
    if not scores or max(scores.values()) == float("-inf"):
        return None
    experiment, run = max(scores, key=scores.get).split("/")
    return experiment, run


def _protocol_name(task: Mapping[str, Any], dataset: str) -> str:
    p = task.get("protocol", {})
    name = f"{p.get('n_way')}-way {p.get('k_shot', 1)}-shot"
    if dataset == "omniglot":
        name += " within-alphabet" if p.get("within_alphabet") else " unstructured"
    return name


def accuracy_line(result: OneShotResult | Mapping[str, Any], dataset: str) -> str:
    """``"20-way 1-shot within-alphabet: 0.853 ± 0.022 (1000 episodes, evaluation split)"``."""
    values = result.to_dict() if isinstance(result, OneShotResult) else dict(result)
    p = values["protocol"]
    return (
        f"{_protocol_name(values, dataset)}: {values['accuracy']:.3f} ± {values['ci95']:.3f} "
        f"(95% CI, {p.get('episodes')} episodes, {p.get('queries_per_class', 1)} query per "
        f"class, {dataset} {p.get('split')} split)"
    )


def protocol_notes(report: Mapping[str, Any]) -> str:
    """The protocols behind a report of :func:`oneshot.evaluation.report.evaluate_scorer`."""
    held_out = (
        "characters never seen in training"
        if report["dataset"] == "omniglot"
        else "the same digits as in training, other images"
    )
    notes = [
        f"{report['dataset']} {report['split']} split, {report['images']} images of "
        f"{report['classes']} classes ({held_out})"
    ]
    if report.get("nway"):
        p = report["nway"][0]["protocol"]
        notes.append(
            f"N-way K-shot: {p['episodes']} episodes per task, {p['queries_per_class']} query "
            "per class, nearest support wins"
        )
    if "lake" in report and "mean_error" in report["lake"]:
        notes.append(
            "Lake runs error: the 20 official 20-way 1-shot within-alphabet runs (400 trials)"
        )
    for kind, values in report.get("verification", {}).items():
        p = values["protocol"]
        pairs = "random class-balanced pairs" if kind == "balanced" else p["pairs"]
        notes.append(
            f"verification ({kind}): {pairs}, {p['positives']:,} same-class and "
            f"{p['negatives']:,} different-class; TPR = sensitivity at FPR {values['fpr_target']:g}"
        )
    if "cmc" in report:
        p = report["cmc"]["protocol"]
        notes.append(
            f"CMC: {p['n_classes']} classes, one gallery and one query image each, mean of "
            f"{p['trials']} draws"
        )
    if "retrieval" in report:
        notes.append("retrieval: every image queried against all the others")
    return "; ".join(notes) + "."


def summary_table(reports: Mapping[str, Mapping[str, Any]], digits: int = 3) -> str:
    """A Markdown table of the headline metrics (rows, named with their protocol) per model."""
    columns = {name: headline_metrics(dict(report)) for name, report in reports.items()}
    keys = list(dict.fromkeys(k for values in columns.values() for k in values))
    lines = ["| metric | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for key in keys:
        cells = [f"{c[key]:.{digits}f}" if key in c else "-" for c in columns.values()]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def show_table(reports: Mapping[str, Mapping[str, Any]], notes: bool = True) -> None:
    """Display :func:`summary_table` (and the protocols of the first report) in a notebook."""
    from IPython.display import Markdown, display

    text = summary_table(reports)
    if notes and reports:
        text += "\n\nProtocols: " + protocol_notes(next(iter(reports.values())))
    display(Markdown(text))


def show(fig: Figure, dpi: int = 80) -> None:
    """Display a matplotlib Figure in a notebook as a PNG (works with the Agg backend)."""
    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    display(Image(buffer.getvalue()))


def plot_images(
    images: np.ndarray, titles: Sequence[str] | None = None, cols: int = 10, size: float = 1.1
) -> Figure:
    """A grid of images (strokes bright, drawn dark on white) with optional titles."""
    images = np.asarray(images)
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * 1.15 * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray_r")
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=7)
    fig.tight_layout()
    return fig


def plot_distance_histograms(
    distances: Mapping[str, tuple[np.ndarray, np.ndarray]], bins: int = 50
) -> Figure:
    """Histograms of same-class vs different-class pair distances, one panel per model.

    Args:
        distances: model name -> ``(distances (P,), same (P,) booleans)``.
        bins: histogram bins. Defaults to 50.
    """
    fig, axes = plt.subplots(1, len(distances), figsize=(5 * len(distances), 3.5), squeeze=False)
    for ax, (name, (values, same)) in zip(axes[0], distances.items(), strict=True):
        values, same = np.asarray(values), np.asarray(same, dtype=bool)
        edges = np.histogram_bin_edges(values, bins=bins)
        ax.hist(values[same], bins=edges, alpha=0.6, color="tab:green", label="same class")
        ax.hist(values[~same], bins=edges, alpha=0.6, color="tab:red", label="different class")
        ax.set_xlabel("distance")
        ax.set_ylabel("pairs")
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_error_bars(
    errors: Mapping[str, float], highlight: Sequence[str] = (), title: str = ""
) -> Figure:
    """Horizontal bars of error rates in percent (e.g. ours next to published figures)."""
    names = list(errors)
    values = [errors[n] for n in names]
    colours = ["tab:orange" if n in highlight else "tab:blue" for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    bars = ax.barh(names, values, color=colours)
    ax.bar_label(bars, [f"{v:.1f}%" for v in values], padding=3, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("error (%)")
    ax.set_xlim(0, max(values) * 1.15 + 1)
    ax.set_title(title)
    fig.tight_layout()
    return fig
