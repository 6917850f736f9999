"""The transfer benchmark: does the recipe of ``python -m oneshot.train --images`` learn an
embedding that beats the untrained network and raw pixels on classes it never saw, on several
tasks and not only the one it was chosen on?

Each task is a small "folder" of C classes built from the real data sets (no synthetic images),
handled exactly as ``--images`` handles a folder (:func:`oneshot.experiments.your_data.
folder_recipe`: classes held out to monitor, starts scored, the kept checkpoint), then scored
on the *test* images of other classes, never seen by the run nor by the start it chose:

- ``mnist-digits``: MNIST training digits 0-4, 200 images each (1,000 images) -> 5-way 1-shot
  on the test split's digits 5-9. The ``mnist`` start saw 5-9 and is left out.
- ``omniglot-20``: 20 Omniglot background characters (all 20 drawings each, 400 images) ->
  20-way 1-shot on the evaluation alphabets' 659 characters.
- ``omniglot-alphabet``: one background alphabet, Latin (26 characters, 520 images) -> 20-way
  1-shot on the evaluation alphabets.

For every task and seed the same 1,000 test episodes score: each recipe's kept model, the
untrained network (the seed's random weights), raw pixels, and each start allowed on the task
(with no training). A recipe's margin over a baseline is the mean per-episode accuracy
difference, with a 95% interval over the episodes of all seeds pooled (paired: same episodes).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from oneshot.data import load_mnist, load_omniglot
from oneshot.data.datasets import LabelledImages
from oneshot.data.splits import hold_out_classes, subset_classes
from oneshot.evaluation.episodes import evaluate_episodes, mean_ci95, sample_episodes
from oneshot.evaluation.scoring import Scorer
from oneshot.experiments.self_supervised import simclr_run, views
from oneshot.experiments.your_data import default_validation_classes, folder_recipe
from oneshot.models.starts import RANDOM, STARTS, load_start
from oneshot.names import AUTO_START
from oneshot.training.baselines import UNTRAINED_FILE, pixel_scorer
from oneshot.training.best import BEST_STEP
from oneshot.training.files import read_history
from oneshot.training.folders import elapsed_seconds, steps_trained
from oneshot.training.pretrained import pinned
from oneshot.training.runner import train_run
from oneshot.training.setup import RunData, build_model
from oneshot.training.starts import FINE_TUNE_LEARNING_RATE

# recipe name: its --init-from (simclr-start: a SimCLR first stage, then random-start's recipe
# from its network)
RECIPES = {"auto-start": AUTO_START, "random-start": RANDOM, "simclr-start": RANDOM}
EPISODES = 1000
FOLDER_IMAGES_PER_CLASS = 200  # MNIST task


@dataclass(frozen=True)
class TransferTask:
    """A folder of few classes and the test images of classes it never saw."""

    name: str
    summary: str
    load: Callable[[int, str | Path | None], tuple[LabelledImages, LabelledImages]]
    n_way: int
    excluded_starts: tuple[str, ...] = ()  # starts that saw the test classes

    def starts(self) -> list[str]:
        return [name for name in STARTS if name not in self.excluded_starts]


def _plain(data: LabelledImages) -> LabelledImages:
    """The images and class names only, as a folder gives them (no alphabets)."""
    return LabelledImages(
        data.images, data.labels, class_names=list(data.class_names or []) or None
    )


def _mnist_digits(size: int, data_dir) -> tuple[LabelledImages, LabelledImages]:
    train = load_mnist("train", data_dir=data_dir, image_size=size)
    keep = np.concatenate(
        [np.flatnonzero(train.labels == d)[:FOLDER_IMAGES_PER_CLASS] for d in range(5)]
    )
    folder = LabelledImages(train.images[keep], train.labels[keep],
                            class_names=[f"digit{d}" for d in range(5)])  # fmt: skip
    test = load_mnist("test", data_dir=data_dir, image_size=size)
    held = test.labels >= 5
    return folder, LabelledImages(test.images[held], test.labels[held] - 5)


def _omniglot(classes: Callable[[Any], np.ndarray]):
    def load(size: int, data_dir) -> tuple[LabelledImages, LabelledImages]:
        background = load_omniglot("background", image_size=size, data_dir=data_dir)
        folder = _plain(subset_classes(background, classes(background)))
        test = load_omniglot("evaluation", image_size=size, data_dir=data_dir)
        return folder, LabelledImages(test.images, test.labels)

    return load


def _twenty_characters(background) -> np.ndarray:
    return np.sort(np.random.default_rng(0).choice(len(background.class_names), 20, replace=False))


def _latin(background) -> np.ndarray:
    alphabet = background.alphabet_names.index("Latin")
    return np.unique(background.labels[background.alphabets == alphabet])


TASKS: dict[str, TransferTask] = {
    task.name: task
    for task in (
        TransferTask("mnist-digits", "MNIST train 0-4 (200 each) -> test 5-9, 5-way",
                     _mnist_digits, 5, excluded_starts=("mnist",)),
        TransferTask("omniglot-20", "20 Omniglot background characters -> evaluation, 20-way",
                     _omniglot(_twenty_characters), 20),
        TransferTask("omniglot-alphabet", "Omniglot's Latin alphabet -> evaluation, 20-way",
                     _omniglot(_latin), 20),
    )
}  # fmt: skip


def run_task(task: TransferTask, seed: int, out: Path, data_dir=None,
             steps: int | None = None, recipes: Sequence[str] = tuple(RECIPES)) -> dict[str, Any]:  # fmt: skip
    """Train each recipe on ``task``'s folder with ``seed`` into ``out/<recipe>`` and score
    it with the baselines on the same test episodes; the scores (also ``out/scores.json``)."""
    loaded: dict[int, tuple[LabelledImages, LabelledImages]] = {}

    def at(size: int | None) -> tuple[LabelledImages, LabelledImages]:
        size = size or 28
        if size not in loaded:
            loaded[size] = task.load(size, data_dir)
        return loaded[size]

    def split_at(size: int | None) -> tuple[LabelledImages, LabelledImages]:
        folder = at(size)[0]
        return hold_out_classes(folder, default_validation_classes(len(folder.class_names)))

    test28 = at(28)[1]
    episodes = sample_episodes(test28.labels, task.n_way, 1, 1, EPISODES, seed=seed)
    embedded: dict[str, tuple[Scorer, np.ndarray]] = {}

    def score(name: str, scorer: Scorer, size: int) -> None:
        embedded[name] = (scorer, scorer.embed(at(size)[1].images))

    path = out / "scores.json"
    record: dict[str, Any] = (
        json.loads(path.read_text()) if path.exists()
        else {"task": task.name, "seed": seed, "recipes": {}, "episode_accuracies": {}}
    )  # fmt: skip
    done = set(record["episode_accuracies"])
    if "pixels" not in done:
        score("pixels", pixel_scorer((28, 28, 1)), 28)
    for start in (s for s in task.starts() if s not in done):
        network = load_start(start)
        score(start, Scorer.from_model(network, distance="euclidean"), STARTS[start].image_size)
    settings = dict(shipped=task.starts(), dataset="folder",
                    folder=f"transfer benchmark: {task.name}",
                    **({} if steps is None else {"steps": steps}))  # fmt: skip
    if "untrained" not in done:  # the network random-start trains, as its runner builds it
        base, train, _, _ = folder_recipe(split_at, RANDOM, seed, **settings)
        keras.utils.set_random_seed(seed)
        score("untrained", Scorer.from_model(build_model(base, train)), base.image_size)
    for recipe in recipes:
        if recipe in record["recipes"]:  # scored already, on the same episodes
            continue
        run, train, held, scores = folder_recipe(split_at, RECIPES[recipe], seed, **settings)
        info: dict[str, Any] = {}
        if recipe == "simclr-start":  # a self-supervised first stage, then the labels
            first = simclr_run(run, len(train), **({} if steps is None else {"steps": steps}))
            train_run(first, out / "simclr", data_dir, seed=seed, overwrite=True,
                      data=RunData(views(train), held, held))  # fmt: skip
            info["simclr"] = _trained(out / "simclr", first)
            run = dataclasses.replace(
                run, init_from=str(out / "simclr" / "model.keras"),
                learning_rate=FINE_TUNE_LEARNING_RATE,
            )  # fmt: skip
        run_dir = out / recipe
        model = train_run(pinned(run), run_dir, data_dir, seed=seed, overwrite=True,
                          data=RunData(train, held, held))  # fmt: skip
        score(recipe, Scorer.from_model(model), run.image_size)
        record["recipes"][recipe] = {
            "start": "simclr" if recipe == "simclr-start" else run.init_from or RANDOM,
            "start_scores": [dataclasses.asdict(s) for s in scores],
            **_trained(run_dir, run),
            "held_out_classes": list(held.class_names),
            **info,
        }
    for folder in (out / "simclr", *(out / r for r in recipes)):
        for name in ("model.keras", UNTRAINED_FILE):  # small results: the configs remake them
            (folder / name).unlink(missing_ok=True)
        shutil.rmtree(folder / "backup", ignore_errors=True)
    for name, (scorer, embeddings) in embedded.items():
        result = evaluate_episodes(scorer, embeddings, episodes)
        record["episode_accuracies"][name] = result.episode_accuracies.tolist()
    record["accuracy"] = {
        name: float(np.mean(values)) for name, values in record["episode_accuracies"].items()
    }
    path.write_text(json.dumps(record, indent=1))
    return record


def _trained(run_dir: Path, run) -> dict[str, Any]:
    """What a finished run did: its steps, kept step, training time and config."""
    history = run_dir / "history.csv"
    return {
        "steps_trained": steps_trained(history),
        "kept_step": int(float(read_history(run_dir)[BEST_STEP][-1])),
        "training_seconds": elapsed_seconds(history),
        "config": run.to_dict(),
    }


def margins(records: Sequence[dict[str, Any]], recipe: str, baseline: str) -> tuple[float, float]:
    """Mean per-episode accuracy difference (recipe - baseline) and its 95% interval, over the
    episodes of every seed pooled."""
    differences = np.concatenate([
        np.asarray(r["episode_accuracies"][recipe]) - np.asarray(r["episode_accuracies"][baseline])
        for r in records
    ])  # fmt: skip
    return mean_ci95(differences)
