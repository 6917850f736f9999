"""Pretrained starts that ship with the package: the project's own trained embedding networks,
by name (``--init-from omniglot``), for runs on few classes.

A start is the embedding network of a committed run (``model.keras`` of ``results/``, saved
without its optimizer or loss), small enough to be package data. Each says what it saw in
training, so an evaluation can leave out a start that saw its test classes, and the command
that trained it:

- ``omniglot``: the Omniglot stroke network, conv4 width 64 at 35x35 grey, 8,500 steps of
  batch-hard triplets on the 964 background characters (and their rotations), batches from one
  alphabet: ``results/omniglot-best-30min/seed0``. Images of another size are resized to 35.
- ``mnist``: conv4 width 64 at 28x28 grey, 1,500 steps of batch-hard triplets on all ten
  digits of MNIST's training split: ``results/mnist-best``.

A start can hurt: on classes unlike its own a trained network can score below the same
architecture with random weights, which is why ``python -m oneshot.train --images`` scores
every start on the folder's held-out classes and starts from the best
(:mod:`oneshot.training.starts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oneshot.models.saving import load_model
from oneshot.names import RANDOM_START, SHIPPED_STARTS

HERE = Path(__file__).resolve().parent
RANDOM = RANDOM_START  # the run's own network with the seed's random weights


@dataclass(frozen=True)
class Start:
    """A shipped pretrained embedding network.

    Attributes:
        name: what ``--init-from`` takes.
        image_size: the side of the square images it takes.
        channels: 1 (grey) or 3 (colour).
        trained_on: the dataset and the part of it whose classes it saw, e.g.
            ``("mnist", "train digits 0-9")``.
        command: the command that trained the run it comes from.
    """

    name: str
    image_size: int
    channels: int
    trained_on: tuple[str, str]
    command: str

    @property
    def path(self) -> Path:
        """The ``.keras`` file of its embedding network, inside the package."""
        return HERE / f"{self.name}.keras"

    @property
    def dataset(self) -> str:
        """The dataset whose classes it saw."""
        return self.trained_on[0]


STARTS: dict[str, Start] = {
    "omniglot": Start(
        "omniglot", 35, 1, ("omniglot", "background set: 964 characters of 30 alphabets"),
        "python -m oneshot.train --experiment omniglot-best-30min --seed 0 --threads 1 "
        "--out results/omniglot-best-30min/seed0",
    ),
    "mnist": Start(
        "mnist", 28, 1, ("mnist", "training split: all ten digits"),
        "python -m oneshot.train --experiment mnist-best --out results/mnist-best",
    ),
}  # fmt: skip


assert tuple(STARTS) == SHIPPED_STARTS, "oneshot.names.SHIPPED_STARTS lists the shipped starts"


def is_start_name(value: str | Path) -> bool:
    """Whether ``value`` names a shipped start (not a path)."""
    return str(value) in STARTS


def start_path(value: str | Path) -> Path:
    """The file of ``init_from``: a shipped start's package file for its name, else the path."""
    return STARTS[str(value)].path if is_start_name(value) else Path(value)


def load_start(name: str):
    """The embedding network of the shipped start ``name`` (a ``keras.Model``)."""
    return load_model(STARTS[name].path, compile=False)


def starts_for(channels: int) -> list[Start]:
    """The shipped starts that take images of ``channels`` channels."""
    return [start for start in STARTS.values() if start.channels == channels]
