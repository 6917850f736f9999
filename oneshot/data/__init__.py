"""Data: real datasets (MNIST, Omniglot, Lake's one-shot runs) and tf.data samplers."""

from oneshot.data.datasets import (
    DATASETS,
    SPLITS,
    LabelledImages,
    LakeRun,
    OmniglotSet,
    load_dataset,
    load_lake_runs,
    load_mnist,
    load_omniglot,
)
from oneshot.data.preprocess import to_model_input
from oneshot.data.sources import DataError

__all__ = [
    "DATASETS",
    "SPLITS",
    "DataError",
    "LabelledImages",
    "LakeRun",
    "OmniglotSet",
    "load_dataset",
    "load_lake_runs",
    "load_mnist",
    "load_omniglot",
    "to_model_input",
]
