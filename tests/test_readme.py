"""The README's first Python example runs as written (with 2 training steps instead of 500) and
needs at most 5 import lines."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def first_python_example() -> str:
    text = README.read_text()
    return re.search(r"In Python:\n\n```python\n(.*?)```", text, re.S).group(1)


def test_the_first_example_needs_at_most_five_import_lines():
    code = first_python_example()
    imports = [line for line in code.splitlines() if re.match(r"(import|from) \S", line)]
    assert 1 <= len(imports) <= 5, imports


def test_the_first_example_trains_and_scores(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("ONESHOT_DATA_DIR", str(data_dir))
    code = first_python_example().replace("steps_per_epoch=500", "steps_per_epoch=2")
    assert "steps_per_epoch=2" in code
    exec(compile(code, str(README), "exec"), {})
    accuracy, ci95 = capsys.readouterr().out.strip().splitlines()[-1].split()[:2]
    assert 1 / 20 < float(accuracy) <= 1 and 0 < float(ci95) < 0.1
