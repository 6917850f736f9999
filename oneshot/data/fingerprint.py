"""A checksum of a labelled set's content, so that a run can refuse data that changed under it.

A run trained on a folder of your images records :func:`fingerprint` of what it read (in
``config.json``); ``--resume`` reads the folder again and refuses to continue if an image, a
class or a file name changed, instead of silently training on other data.
"""

from __future__ import annotations

import hashlib

import numpy as np

from oneshot.data.datasets import LabelledImages

DIGITS = 16  # hexadecimal digits kept: 64 bits, plenty to tell two versions of a folder apart


def fingerprint(data: LabelledImages) -> str:
    """``"sha256:<16 hex digits>"`` of the images (pixels and shape), labels, class names and
    files of ``data``: equal for the same content, different if any of them changes."""
    digest = hashlib.sha256()
    images = np.ascontiguousarray(data.images)
    digest.update(repr((images.shape, str(images.dtype))).encode())
    digest.update(images.tobytes())
    digest.update(np.asarray(data.labels, dtype=np.int64).tobytes())
    for names in (data.class_names, data.files):
        digest.update(repr(names).encode())
    return f"sha256:{digest.hexdigest()[:DIGITS]}"
