"""The run folder ``OUT/<run>/`` before training: what it holds (:func:`run_state`), whether this
command may write it (:func:`check_run`, which compares a resumed run's stored settings with
the asked ones and names every difference), and the repairs a resume needs (history rows past
the last checkpoint dropped, elapsed training time carried over).
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
from pathlib import Path
from typing import Any

from oneshot.errors import UsageError
from oneshot.training.callbacks import BACKUP_DIR
from oneshot.training.configs import RunConfig
from oneshot.training.files import EXPERIMENT_FILE, HISTORY_FILE, MODEL_FILE
from oneshot.training.lock import LOCK_FILE, FolderLock


class OutputExistsError(UsageError, RuntimeError):
    """The output folder already holds a run and neither --resume nor --overwrite was given,
    or ``--resume`` asks for settings other than the stored run's."""


# checksums of a run's input files in its config: key -> (what, the field naming the file)
CHANGED_INPUTS = {
    "folder_checksum": ("the folder", "folder"),
    "init_checksum": ("the pretrained model", "init_from"),
}


def run_state(run_dir: Path) -> str:
    """``"finished"`` (a model), ``"interrupted"`` (a config, history or checkpoint but no
    model) or ``"absent"`` (nothing of a run; a stale ``.lock`` does not count)."""
    run_dir = Path(run_dir)
    if (run_dir / MODEL_FILE).exists():
        return "finished"
    if any((run_dir / name).exists() for name in ("config.json", HISTORY_FILE, BACKUP_DIR)):
        return "interrupted"
    return "absent"


def _normalised(values: Any) -> Any:
    return json.loads(json.dumps(values))


TRAINING_KEYS = ("strategy",)  # config.json keys beside the RunConfig (distributed.training_record)


def _stored_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "config.json"
    if not path.exists():
        return None
    stored = json.loads(path.read_text())
    training = {k: stored.pop(k) for k in TRAINING_KEYS if k in stored}
    with contextlib.suppress(ValueError, TypeError, KeyError):  # oneshot 0.1 configs
        stored = {**RunConfig.from_dict(stored).to_dict(), "seed": stored.get("seed")}
    return _normalised({**stored, **training})


def settings_differences(stored: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """``"key: stored X, asked Y"`` for every key whose values differ (missing = None)."""
    keys = list(dict.fromkeys([*stored, *asked]))
    return [
        f"{k}: the run has {stored.get(k)!r}, this command asks for {asked.get(k)!r}"
        for k in keys
        if stored.get(k) != asked.get(k)
    ]


def check_run(
    config: RunConfig,
    run_dir: Path,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    record: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> str:
    """What training ``config`` into ``run_dir`` will do, checked without writing anything:
    ``"new"``, ``"overwrite"``, ``"resume"`` or ``"finished"`` (resume of a finished run:
    load and re-evaluate).

    Args:
        config, run_dir, seed, resume, overwrite: as for :func:`train_run`.
        record: experiment-level settings to compare on resume (e.g. the evaluation and the
            strategy), against ``OUT/experiment.json``. Defaults to None.
        training: what ``config.json`` records beside the config (the strategy and global
            mining, ``distributed.training_record``); a resume must ask for the same. Defaults to
            None (nothing).

    Raises:
        RunLockedError: another process is training into the folder.
        OutputExistsError: the folder holds a run and neither ``resume`` nor ``overwrite`` is
            set, or ``resume`` asks for settings that differ from the stored run (named).
    """
    run_dir = Path(run_dir)
    FolderLock.check_free(run_dir)  # a run in progress: say so, whatever the folder holds
    state = run_state(run_dir)
    if state == "absent":
        return "new"
    if overwrite:
        return "overwrite"
    if not resume:
        if state == "finished":
            raise OutputExistsError(
                f"{run_dir} already holds a finished run. Pass --overwrite to train again, "
                "--resume to re-evaluate it, or choose another --out."
            )
        raise OutputExistsError(
            f"{run_dir} holds an interrupted run. Pass --resume to continue it, or --overwrite "
            "to start again."
        )
    differences = []
    stored = _stored_config(run_dir)
    if stored is not None:
        asked = {**config.to_dict(), "seed": seed, **(training or {})}
        differences += settings_differences(stored, _normalised(asked))
    experiment_file = run_dir.parent / EXPERIMENT_FILE
    if record and experiment_file.exists():
        old = json.loads(experiment_file.read_text())
        differences += settings_differences(
            {k: old.get(k) for k in record if k in old},
            _normalised({k: v for k, v in record.items() if k in old}),
        )
    if differences:
        asked = config.to_dict()
        changed = [
            f"{what} {getattr(config, field)} changed since the run started"
            for key, (what, field) in CHANGED_INPUTS.items()
            if stored is not None and key in asked and stored.get(key) != asked[key]
        ]
        raise OutputExistsError(
            f"--resume asks for other settings than the run in {run_dir} was started with: "
            + "; ".join(differences)
            + "".join(f" ({c})" for c in changed)
            + ". Resume with the run's settings, or pass --overwrite (or another --out) to "
            "train with the new ones."
        )
    return "finished" if state == "finished" else "resume"


def elapsed_seconds(history: Path) -> float:
    """Training seconds already spent by an interrupted run (last ``seconds`` in history.csv)."""
    if not history.exists():
        return 0.0
    with history.open() as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["seconds"]) if rows and rows[-1].get("seconds") else 0.0


def steps_trained(history: Path) -> int | None:
    """The steps a run trained (last ``step`` in history.csv: fewer than asked after an early
    stop), or None without a history."""
    if not history.exists():
        return None
    with history.open() as f:
        rows = list(csv.DictReader(f))
    return int(float(rows[-1]["step"])) if rows and rows[-1].get("step") else None


def truncate_history(history: Path, steps_done: int) -> None:
    """Keep the rows of ``history.csv`` up to ``steps_done`` (a process killed after writing a
    row but before its checkpoint leaves one row too many); no rows: remove the file."""
    if not history.exists():
        return
    with history.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "step" not in rows[0]:
        history.unlink()
        return
    column = rows[0].index("step")
    kept = [r for r in rows[1:] if r and float(r[column]) <= steps_done]
    if not kept:
        history.unlink()
        return
    if len(kept) != len(rows) - 1:
        with history.open("w", newline="") as f:
            csv.writer(f).writerows([rows[0], *kept])


def clear_run_folder(run_dir: Path) -> None:
    """Remove everything in ``run_dir`` but its lock (``--overwrite``)."""
    for path in run_dir.iterdir():
        if path.name == LOCK_FILE:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
