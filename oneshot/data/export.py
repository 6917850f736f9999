"""Write labelled images out as a folder of class folders of PNG files: the layout
``load_image_folder`` reads, so a built-in set can stand in for a user's own images (to try the
``oneshot.cli.index``/``verify``/``identify``/``cluster``/``novelty`` commands, or notebook 08).

``out/<class>/<file>.png``; a class name with a ``/`` (Omniglot's ``"<alphabet>/<character>"``)
gives the group level above the class folders. The folder is written under a temporary name and
renamed when complete, so an interrupted export leaves nothing that looks finished.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np

from oneshot.data.datasets import LabelledImages


def first_per_class(data: LabelledImages, per_class: int) -> LabelledImages:
    """The first ``per_class`` images of every class, in the data's order (deterministic); the
    result has the type and every per-image field of ``data``."""
    if isinstance(per_class, bool) or not isinstance(per_class, int | np.integer) or per_class < 1:
        raise ValueError(
            f"Invalid value for argument `per_class`. Expected a positive int. Received: "
            f"per_class={per_class!r}"
        )
    labels = np.asarray(data.labels)
    order = np.argsort(labels, kind="stable")
    first_of_class = np.searchsorted(labels[order], labels[order])
    rank = np.arange(len(labels)) - first_of_class  # position of each image within its class
    keep = np.sort(order[rank < per_class])
    per_image = {  # every per-image array (Omniglot's alphabets and drawers too)
        f.name: value[keep]
        for f in dataclasses.fields(data)
        if isinstance(value := getattr(data, f.name), np.ndarray) and len(value) == len(labels)
    }
    if data.files is not None:
        per_image["files"] = [data.files[i] for i in keep]
    return dataclasses.replace(data, **per_image)


def export_image_folder(data: LabelledImages, out: str | Path) -> Path:
    """Write ``data`` to ``out`` as class folders of PNG files and return ``out``.

    Files keep their names when ``data.files`` has them (``load_image_folder``), else they are
    numbered by position (``00042.png``; Omniglot's ``00042_07.png`` keeps the drawer, as in
    its own ``<id>_<drawer>.png`` files). Images are written as stored (uint8; grey or RGB).

    Raises:
        FileExistsError: ``out`` already exists (nothing is overwritten).
        ValueError: the images are not uint8 (N, H, W) or (N, H, W, 3).
    """
    out = Path(out)
    images = np.asarray(data.images)
    if images.dtype != np.uint8 or not (
        images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)
    ):
        raise ValueError(
            "Invalid value for argument `data`. Expected uint8 images (N, H, W) or (N, H, W, 3). "
            f"Received: {images.dtype} images of shape {images.shape}"
        )
    if not len(images):
        raise ValueError("Invalid value for argument `data`. Expected images. Received none.")
    if out.exists():
        raise FileExistsError(f"{out} already exists. Choose a new folder or delete it.")
    from PIL import Image  # late import: only to export images

    names = data.label_names
    drawers = getattr(data, "drawers", None)  # Omniglot: keep them in the name, <id>_<drawer>
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for i, (image, name) in enumerate(zip(images, names, strict=True)):
            if data.files is not None:
                file = Path(data.files[i]).name
            elif drawers is not None and drawers[i] > 0:
                file = f"{i:05d}_{drawers[i]:02d}.png"
            else:
                file = f"{i:05d}.png"
            path = tmp / str(name) / Path(file).with_suffix(".png")
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
