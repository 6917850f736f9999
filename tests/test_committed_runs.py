"""The committed runs under results/ match the code now on main.

- Each run folder's ``config.json`` equals what the current code builds from the command
  recorded in its ``experiment.json`` (experiment, seed, overrides), so no committed number
  comes from a config the code can no longer produce.
- Every committed ``model.keras`` loads with ``keras.saving.load_model`` after a bare
  ``import oneshot`` (a fresh interpreter: nothing else imported).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from oneshot.cli.train import build_experiment, parse_args
from oneshot.training.distributed import training_record

RESULTS = Path(__file__).resolve().parents[1] / "results"
# the transfer benchmark's runs are made by its own command (benchmarks/transfer.py, in the
# header of results/transfer/table.md), not by oneshot.train: each scores.json holds its configs
BENCHMARK_RUNS = RESULTS / "transfer"
CONFIGS = sorted(p for p in RESULTS.glob("**/config.json") if BENCHMARK_RUNS not in p.parents)
MODELS = sorted(RESULTS.glob("**/model.keras"))


def _experiment_record(run_dir: Path) -> dict:
    for folder in (run_dir.parent, run_dir.parent.parent):
        if (folder / "experiment.json").exists():
            return json.loads((folder / "experiment.json").read_text())
    raise AssertionError(f"no experiment.json above {run_dir}")


def test_there_are_committed_runs():
    assert len(CONFIGS) >= 15 and len(MODELS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.parent.relative_to(RESULTS)))
def test_committed_config_is_what_the_recorded_command_builds(path):
    saved = json.loads(path.read_text())
    record = _experiment_record(path.parent)
    command = record.get("commands", {}).get(saved["name"]) or record["command"]
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "oneshot.train"], command
    args = parse_args(argv[3:])
    runs = {r.name: r for r in build_experiment(args).runs}
    assert saved["name"] in runs, (command, saved["name"])
    training = training_record(args.strategy, not args.no_global_mining)  # under a strategy
    built = {**runs[saved["name"]].to_dict(), "seed": args.seed, **training}
    assert saved == built, f"{path} differs from what `{command}` builds now"


def test_every_committed_model_loads_after_import_oneshot():
    code = (
        "import sys, oneshot, keras\n"
        "for p in sys.argv[1:]:\n"
        "    m = keras.saving.load_model(p)\n"
        "    print(p, m.name, flush=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, MODELS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.stdout.strip().splitlines()) == len(MODELS)
