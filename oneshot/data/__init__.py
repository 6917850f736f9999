"""Data: real datasets (MNIST, Omniglot, Lake's one-shot runs), your own images (a folder of
class folders, or arrays), validation splits by class and tf.data samplers."""

from oneshot.data.arrays import from_arrays
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
from oneshot.data.decode import resize_area
from oneshot.data.folders import load_image_folder
from oneshot.data.labels import encode_labels
from oneshot.data.preprocess import to_grayscale, to_model_input
from oneshot.data.sources import DataError
from oneshot.data.splits import hold_out_classes

__all__ = [
    "DATASETS",
    "SPLITS",
    "DataError",
    "LabelledImages",
    "LakeRun",
    "OmniglotSet",
    "encode_labels",
    "from_arrays",
    "hold_out_classes",
    "load_dataset",
    "load_image_folder",
    "load_lake_runs",
    "load_mnist",
    "load_omniglot",
    "pk_dataset",
    "resize_area",
    "to_grayscale",
    "to_model_input",
    "triplet_dataset",
]

#: the tf.data samplers, imported on first use: ``oneshot.data`` itself stays free of
#: TensorFlow, so that ``python -m oneshot.data --help`` answers before TensorFlow starts
_SAMPLERS = ("pk_dataset", "triplet_dataset")


def __getattr__(name: str):
    if name in _SAMPLERS:
        from oneshot.data import samplers  # late import: keeps the command lines light

        return getattr(samplers, name)
    raise AttributeError(f"module 'oneshot.data' has no attribute {name!r}")
