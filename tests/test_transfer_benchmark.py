"""The transfer benchmark's tasks (real MNIST and Omniglot: folders of few classes, tested on
classes they never saw), its SimCLR first stage, and its pooled paired margins."""

from __future__ import annotations

import numpy as np
import pytest

from oneshot.data.datasets import LabelledImages
from oneshot.experiments.self_supervised import SIMCLR_AUGMENT, simclr_run, views
from oneshot.experiments.transfer import TASKS, margins


@pytest.mark.parametrize("name", list(TASKS))
def test_each_task_tests_on_classes_its_folder_never_holds(name, data_dir):
    task = TASKS[name]
    folder, test = task.load(28, data_dir)
    assert folder.class_names and len(folder.class_names) >= 5
    assert not hasattr(folder, "alphabets")  # a folder as --images reads it: no groups
    assert len(np.unique(test.labels)) >= task.n_way
    folder_images = {image.tobytes() for image in folder.images}
    assert not any(image.tobytes() in folder_images for image in test.images[:2000])
    if name == "mnist-digits":
        assert len(folder) == 1000 and folder.class_names == [f"digit{d}" for d in range(5)]
        assert "mnist" in task.excluded_starts  # the mnist start saw the test digits 5-9
    else:
        assert task.starts() == ["omniglot", "mnist"]  # trained on other characters
    big, _ = task.load(35, data_dir)
    assert big.images.shape[1:] == (35, 35) and np.array_equal(big.labels, folder.labels)


def test_views_give_every_image_two_copies_labelled_by_the_image():
    images = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4)
    paired = views(LabelledImages(images, np.zeros(5, np.int32)))
    assert len(paired) == 10 and np.array_equal(paired.images[:5], paired.images[5:])
    assert paired.labels.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]


def test_the_simclr_stage_is_the_recipe_without_labels():
    from oneshot.experiments.your_data import recommended_run
    from oneshot.losses import NTXentLoss

    run = recommended_run([200, 200, 200], image_size=28, validation_classes=("a", "b"),
                          dataset="folder", folder="f", init_from="omniglot")  # fmt: skip
    first = simclr_run(run, images=600)
    assert isinstance(first.loss, NTXentLoss) and first.init_from is None
    assert (first.classes_per_batch, first.samples_per_class) == (64, 2)
    assert first.augment and first.augment_strength == SIMCLR_AUGMENT
    assert first.validation_classes == run.validation_classes and first.keep_best
    assert simclr_run(run, images=40).classes_per_batch == 40


def test_margins_pool_the_paired_episodes_of_every_seed():
    records = [
        {"episode_accuracies": {"a": [1, 1, 0, 1], "b": [0, 1, 0, 1]}},
        {"episode_accuracies": {"a": [1, 0, 1, 1], "b": [1, 0, 0, 0]}},
    ]
    difference, ci95 = margins(records, "a", "b")
    assert difference == pytest.approx(3 / 8)
    values = np.array([1, 0, 0, 0, 0, 0, 1, 1])
    assert ci95 == pytest.approx(1.96 * values.std(ddof=1) / np.sqrt(8))
