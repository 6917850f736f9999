"""Class labels of any kind (int or str) as checked 1-D arrays and integer codes.

Every function that takes ``labels`` accepts integers or strings (folder names, say), shaped
(N,) or (N, 1). Code that needs integers (tf.data tensors, ``bincount``) uses
:func:`integer_labels`: integer labels are kept, any other kind is replaced by its index in the
sorted unique names (``np.unique``), so equal labels get equal codes.
"""

from __future__ import annotations

import numpy as np

_INT32 = np.iinfo(np.int32)


def check_labels(labels, length: int | None = None, argument: str = "labels") -> np.ndarray:
    """``labels`` as a 1-D array, (N, 1) flattened; a clear ValueError for any other shape.

    Args:
        labels: class label of each item: ints or strings, (N,) or (N, 1).
        length: the number of items the labels must match (images, embeddings), if known.
        argument: the argument name used in error messages. Defaults to ``"labels"``.

    Returns:
        The labels as a numpy array (N,).
    """
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected a 1-D array (N,) of class labels "
            f"(int or str; (N, 1) is flattened). Received shape {array.shape}."
        )
    if length is not None and len(array) != length:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected {length} labels, one per image "
            f"or embedding. Received {len(array)}."
        )
    return array


def encode_labels(labels) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, codes)``: the sorted unique labels and each label's index in them (int32)."""
    classes, codes = np.unique(check_labels(labels), return_inverse=True)
    return classes, codes.reshape(-1).astype(np.int32)


def integer_labels(labels) -> np.ndarray:
    """int32 labels (N,): integer labels unchanged, others (str, float) as codes.

    Codes index the sorted unique labels (see :func:`encode_labels`); integer labels beyond the
    int32 range are coded too.
    """
    array = check_labels(labels)
    if array.dtype.kind in "iu" and (
        len(array) == 0 or (array.min() >= _INT32.min and array.max() <= _INT32.max)
    ):
        return array.astype(np.int32)
    return encode_labels(array)[1]
