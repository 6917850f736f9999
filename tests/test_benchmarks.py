"""Smoke tests of the benchmark scripts (``benchmarks/``): ``--quick`` runs into tmp_path, and
time_to_accuracy's threshold logic on a hand-written history.csv."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
NUMBER = r"-?\d+(?:\.\d+)?"


def load_script(name: str):
    """Import ``benchmarks/<name>.py`` as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------- time_to_accuracy

HISTORY = """epoch,learning_rate,loss,monitor_20way,monitor_seconds,seconds,step
0,0.001,0.50,0.55,1.0,30.0,100
1,0.001,0.40,0.72,1.0,61.5,200
2,0.001,0.35,,1.0,75.0,250
3,0.001,0.30,0.69,1.0,90.0,300
4,0.001,0.20,0.81,1.0,121.0,400
5,0.001,0.10,0.84,1.0,150.0,500
"""


@pytest.fixture(scope="module")
def tta():
    return load_script("time_to_accuracy")


def write_run(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "history.csv").write_text(text)
    return folder


def test_first_reach_picks_first_logged_chunk(tta, tmp_path):
    """0.70 is first reached at step 200 (61.5 s) although step 300 dips below it again; the
    row with an empty accuracy (step 250) is skipped; 0.84 is reached exactly at step 500;
    0.85 never."""
    run = write_run(tmp_path / "exp" / "run", HISTORY)
    curve = tta.read_curve(run / "history.csv")
    assert curve.steps == [100, 200, 300, 400, 500]
    assert tta.first_reach(curve, 0.70) == tta.Reached(200, 61.5)
    assert tta.first_reach(curve, 0.80) == tta.Reached(400, 121.0)
    assert tta.first_reach(curve, 0.84) == tta.Reached(500, 150.0)
    assert tta.first_reach(curve, 0.50) == tta.Reached(100, 30.0)
    assert tta.first_reach(curve, 0.85) is None
    assert (curve.last_step, curve.last_seconds) == (500, 150.0)


def test_table_over_a_folder_of_runs(tta, tmp_path):
    """Runs are found recursively; a run without the monitor column is reported as such."""
    write_run(tmp_path / "runs" / "a" / "batch-hard", HISTORY)
    old = "epoch,loss,seconds,step\n0,0.5,30.0,100\n1,0.4,60.0,200\n"
    write_run(tmp_path / "runs" / "b" / "old", old)
    out, plot = tmp_path / "tta.txt", tmp_path / "tta.png"
    text = tta.main([str(tmp_path / "runs"), "--out", str(out), "--plot", str(plot)])
    assert out.read_text() == text + "\n"
    assert plot.stat().st_size > 0
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith(("a/", "b/"))}
    assert set(rows) == {"a/batch-hard", "b/old"}
    cells = rows["a/batch-hard"].split()
    # >= 0.70: 61.5 s = 1.0 min @ 200; 0.80: 2.0 min @ 400; 0.85 and 0.90: never
    assert cells[1:9] == ["1.0", "min", "@", "200", "2.0", "min", "@", "400"]
    assert cells[9:11] == ["never", "never"]
    assert cells[11:] == ["0.840", "0.840", "500", "2.5"]
    assert "no monitor_20way column" in rows["b/old"]


def test_bad_thresholds_name_the_option(tta):
    """Percentages instead of fractions are refused with the option's name."""
    with pytest.raises(ValueError, match="--thresholds"):
        tta.parse_thresholds("70,80")


# ------------------------------------------------- throughput, models, memory, evaluation


@pytest.fixture
def started_tensorflow():
    """Start TensorFlow first, so the scripts' ``--threads 1`` cannot change the thread counts
    of the rest of the test session (it then only applies to their fresh processes)."""
    import tensorflow as tf

    tf.constant(0.0).numpy()


def table_rows(text: str, first_words: set[str]) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        for word in first_words:
            if line.startswith(word + " "):
                rows[word] = line[len(word) :].split()
    return rows


def number_cells(cells: list[str]) -> bool:
    return all(
        re.fullmatch(NUMBER, c.replace(",", "")) and float(c.replace(",", "")) > 0 for c in cells
    )


def run_quick(name: str, data_dir, tmp_path) -> tuple[object, str]:
    """Run ``benchmarks/<name>.py --quick`` into tmp_path; check the file and the header."""
    bench = load_script(name)
    out = tmp_path / f"{name}.txt"
    text = bench.main(["--quick", "--threads", "1", "--data-dir", str(data_dir), "--out", str(out)])
    assert out.read_text() == text + "\n"
    assert text.startswith(f"# python benchmarks/{name}.py --quick")
    assert "TensorFlow" in text and "load average" in text
    return bench, text


def test_bench_throughput_quick(data_dir, tmp_path, started_tensorflow):
    """Every path (the determinism one from its fresh process), all with numbers."""
    bench, text = run_quick("bench_throughput", data_dir, tmp_path)
    rows = table_rows(text, set(bench.PATHS))
    assert list(rows) == [p for p in bench.PATHS if p in rows] and set(rows) == set(bench.PATHS)
    for cells in rows.values():  # images/s, step ms, vs plain
        assert len(cells) == 3 and number_cells(cells)
    assert rows[bench.REFERENCE][2] == "1.00"
    assert "P x K = 8 x 4 = 32" in text


def test_bench_models_quick(data_dir, tmp_path, started_tensorflow):
    """conv4w32@28 in the four model kinds, with their images per step and numbers."""
    bench, text = run_quick("bench_models", data_dir, tmp_path)
    grid = [line.split() for line in text.splitlines() if line.startswith("conv4w32@28 ")]
    assert [row[2] for row in grid] == list(bench.KINDS)
    assert [row[3] for row in grid] == ["128", "96", "128", "128"]
    assert all(number_cells(row[4:]) for row in grid)
    assert "precision float32" in text
    with pytest.raises(ValueError, match="`precision`"):  # --precision reaches the run config
        bench.main(["--quick", "--precision", "float16", "--data-dir", str(data_dir),
                    "--out", str(tmp_path / "x.txt")])  # fmt: skip


def test_bench_memory_quick(data_dir, tmp_path, started_tensorflow):
    """One row, fit at B = 32, measured in a fresh process."""
    _, text = run_quick("bench_memory", data_dir, tmp_path)
    memory = text.splitlines()[-1].split()
    assert memory[:2] == ["fit", "32"] and number_cells(memory[2:])
    assert float(memory[2]) > 100  # TensorFlow alone is more
    assert float(memory[3]) < float(memory[2])


def test_reference_step_refuses_unknown_variant():
    """The reference step names the argument and the choices."""
    reference = load_script("reference_step")
    with pytest.raises(ValueError, match="`variant`"):
        reference.reference_step("keras", 28)


def test_bench_evaluation_quick(data_dir, tmp_path, started_tensorflow):
    """One row per task, in order, with the item counts of the quick subset."""
    bench = load_script("bench_evaluation")
    out = tmp_path / "evaluation.txt"
    args = ["--quick", "--threads", "1", "--data-dir", str(data_dir), "--out", str(out)]
    text = bench.main(args)
    assert out.read_text() == text + "\n"
    rows = [line.split() for line in text.splitlines() if line.startswith(("conv4", "hausdorff"))]
    tasks = [" ".join(row[2:-5]) for row in rows]
    assert tasks == [
        "embed",
        "nway 5 within",
        "nway 5 unstructured",
        "nway 20 within",
        "nway 20 unstructured",
        "lake 2 runs",
        "cmc 46-way",
        "roc first-500",
        "report (all)",
        "hausdorff 2 runs",
    ]
    assert rows[0][-5] == "920"  # two alphabets: 46 characters x 20 drawers
    assert rows[7][-5] == str(500 * 499 // 2)
    assert all(float(row[-1]) > 0 for row in rows)


def test_bench_mining_quick(tmp_path, started_tensorflow):
    """A row per loss at B = 16 with step, loss-alone and memory numbers; the naive (B, B, B)
    control has memory only (it is not timed)."""
    bench = load_script("bench_mining")
    out = tmp_path / "mining.txt"
    text = bench.main(["--quick", "--out", str(out)])
    assert out.read_text() == text + "\n"
    assert text.startswith("# python benchmarks/bench_mining.py --quick")
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[8:] if line}
    assert list(rows) == [*bench.LOSSES, "naive_b3"]
    for name in bench.LOSSES:
        assert rows[name][0] == "16" and number_cells(rows[name][1:3])  # step ms, loss ms
        assert all(re.fullmatch(NUMBER, c) for c in rows[name][4:])  # MB: 0.0 at B = 16
    assert rows["naive_b3"][1:3] == ["nan", "nan"] and re.fullmatch(NUMBER, rows["naive_b3"][4])


def test_bench_paper_step_quick(data_dir, tmp_path, started_tensorflow):
    """B's two hard-batch runs (CPU-sized), one row each: mining, step and update times, the
    update a part of the step, and hours = s / it x steps; an unknown run is refused."""
    bench = load_script("bench_paper_step")
    out = tmp_path / "paper_step.txt"
    argv = ["--quick", "--precisions", "float32", "--threads", "1", "--data-dir", str(data_dir)]
    text = bench.main([*argv, "--out", str(out)])
    assert out.read_text() == text + "\n"
    assert text.startswith("# python benchmarks/bench_paper_step.py --quick")
    rows = table_rows(text, {"triplet", "quadruplet"})
    assert set(rows) == {"triplet", "quadruplet"}
    for cells in rows.values():  # precision params mine step update share s/it steps hours
        assert cells[0] == "float32" and number_cells(cells[1:5]) and number_cells(cells[6:])
        mine, step, update = (float(c) for c in cells[2:5])
        assert update < step
        assert float(cells[6]) == pytest.approx((mine + step) / 1000, abs=2e-3)
        hours = float(cells[6]) * int(cells[7].replace(",", "")) / 3600
        assert float(cells[8]) == pytest.approx(hours, abs=0.01 + 1e-3 * hours)
    with pytest.raises(ValueError, match="`--runs`"):
        bench.main([*argv, "--runs", "siamese", "--out", str(out)])


def test_bench_index_quick(tmp_path, started_tensorflow):
    """The exact reference and an IVF index (two fresh processes) on 5,000 random vectors:
    exact recall is 1, the approximate one in (0, 1], every time and memory number positive."""
    pytest.importorskip("faiss")
    bench = load_script("bench_index")
    out = tmp_path / "index.txt"
    text = bench.main(
        ["--quick", "--indexes", "exact,ivf:nprobe=8", "--threads", "1", "--out", str(out)]
    )
    assert out.read_text() == text + "\n"
    assert text.startswith("# python benchmarks/bench_index.py --quick")
    rows = {
        line.split()[1]: line.split()[2:]
        for line in text.splitlines()
        if line.startswith("    5,000")
    }
    assert list(rows) == ["exact", "ivf:nprobe=8"]
    assert float(rows["exact"][-1]) == 1.0 and 0 < float(rows["ivf:nprobe=8"][-1]) <= 1
    assert all(float(cell) >= 0 for cells in rows.values() for cell in cells)
    with pytest.raises(ValueError, match="`--indexes`"):
        bench.main(["--quick", "--indexes", "exact,flat:nprobe=3", "--out", str(out)])


@pytest.mark.slow  # fresh processes; tests/test_distributed.py covers the path by default
def test_bench_distributed_quick_two_worker_processes(data_dir, tmp_path, monkeypatch):
    """The distributed step alone and two worker processes with global mining: one row each,
    the workers' all-gather timed."""
    monkeypatch.setenv("ONESHOT_DATA_DIR", str(data_dir))
    bench = load_script("bench_distributed")
    out = tmp_path / "distributed.txt"
    text = bench.main(["--quick", "--setups", "2,5", "--out", str(out)])
    assert out.read_text() == text + "\n"
    rows = text.splitlines()[-2:]
    assert rows[0].startswith("1 process, distributed step") and rows[0].split()[4] == "1"
    assert rows[1].startswith("2 worker processes, global mining")
    numbers = re.findall(NUMBER, rows[1].split("mining", 1)[1])
    assert numbers[0] == "2" and float(numbers[1]) > 0 and float(numbers[3]) > 0  # gather ms
    with pytest.raises(SystemExit):
        bench.main(["--setups", "7", "--out", str(out)])


def test_bench_fit_stall_quick(data_dir, tmp_path, started_tensorflow):
    """One fresh process (the default setting): a row per way, wall = in epochs + outside."""
    bench = load_script("bench_fit_stall")
    out = tmp_path / "fit_stall.txt"
    text = bench.main(["--quick", "--data-dir", str(data_dir), "--out", str(out)])
    assert out.read_text() == text + "\n"
    assert text.startswith("# python benchmarks/bench_fit_stall.py --quick")
    assert "avx2" in text and "avx512f" in text and "load average" in text
    rows = table_rows(text, set(bench.WAYS))
    assert set(rows) == set(bench.WAYS)
    for cells in rows.values():  # calls, wall (min-max), in epochs, outside, ms/step, max, snapped
        wall, inside, outside = (float(cells[i]) for i in (1, 3, 4))
        assert cells[0] == "1" and wall > 0 and inside > 0
        assert wall == pytest.approx(inside + outside, abs=0.02)  # one call: medians add up
    with pytest.raises(SystemExit):
        bench.main(["--settings", "threads=lots", "--out", str(out)])


def test_bench_pml_step_quick(data_dir, tmp_path, started_tensorflow):
    """The two project ways (and pytorch-metric-learning's, if its Python exists) with numbers;
    a missing PyTorch Python is said in the table."""
    bench = load_script("bench_pml_step")
    out = tmp_path / "pml_step.txt"
    argv = ["--quick", "--data-dir", str(data_dir), "--out", str(out)]
    have_pml = Path(bench.PML_PYTHON).exists()
    text = bench.main(argv if have_pml else [*argv, "--pml-python", str(tmp_path / "none")])
    assert out.read_text() == text + "\n"
    assert text.startswith("# python benchmarks/bench_pml_step.py --quick")
    assert "avx512_bf16" in text and "load average" in text and "P x K = 8 x 4" in text
    rows = table_rows(text, {"project fit", "project graph loop", "pml"})
    assert {"project fit", "project graph loop"} <= set(rows)
    for cells in rows.values():
        assert number_cells(cells[:3])
    if have_pml:
        assert rows["pml"][3] == "1.00" and "pytorch-metric-learning 2.9" in text
    else:
        assert "pml: no " in text
