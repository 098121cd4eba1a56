"""Trained results must hold on any CPU, not only on the machine that ran the notebook.

The toy R1 teacher once sat on a knife edge: 100% on one machine, 72.4% on another (AVX-512, two threads), with the
same seed. Here its recipe is trained under a perturbation that notebook 02 does not use (another seed, one thread)
and must still clear the notebook's bar. The full spread over seeds 0-4 and 1-2 threads is measured by
``benchmarks/robustness.py``; its table-making is checked here too.
"""

import importlib.util
from pathlib import Path

import pytest
import torch

from course_utils import toy_reasoner

NOTEBOOK_BAR = 0.95   # notebook 02 asserts the teacher's held-out accuracy >= 0.95


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.training
@pytest.mark.slow      # benchmarks/robustness.py measures this recipe over seeds 0-4 and 1-2 threads
def test_teacher_recipe_clears_the_bar_with_another_seed_and_one_thread(one_thread):
    recipe = toy_reasoner.Recipe(seed=1)   # the notebook and the checkpoint use seed 0
    tokenizer = toy_reasoner.build_tokenizer()
    teacher, log = toy_reasoner.train_teacher(tokenizer, recipe, progress=False)
    accuracy = toy_reasoner.evaluate(teacher, tokenizer)["accuracy"]
    assert accuracy >= NOTEBOOK_BAR, f"teacher reached {accuracy:.1%} with seed 1 and one thread"
    assert len(log["loss"]) == recipe.teacher_steps


def load_benchmark():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "robustness.py"
    spec = importlib.util.spec_from_file_location("robustness", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_robustness_table_judges_each_bar_by_the_worst_run():
    bench = load_benchmark()
    runs = [{"recipe": "moe", "figures": {"MaxVio_global, loss-free bias": v, "MaxVio_global: none / bias": r}}
            for v, r in [(0.10, 9.0), (0.25, 3.5), (0.31, 12.0)]]
    rows = {row["figure"]: row for row in bench.table(runs)}
    vio, ratio = rows["MaxVio_global, loss-free bias"], rows["MaxVio_global: none / bias"]
    assert (vio["min"], vio["median"], vio["max"]) == (0.10, 0.25, 0.31)
    assert vio["holds"] is False              # "< 0.3": the worst run (0.31) is the maximum, and it misses
    assert ratio["holds"] is True             # "> 3": the worst run (3.5) is the minimum, and it clears
    teacher = bench.table([{"recipe": "toy_r1", "figures": {"teacher held-out accuracy": 0.95, "traces kept": 1.0}}])
    assert [row["holds"] for row in teacher] == [True, None]   # ">= 0.95" holds at equality; "traces kept" has no bar


def test_every_recipe_has_well_formed_bars():
    bench = load_benchmark()
    assert set(bench.BARS) == set(bench.RECIPES)
    for bars in bench.BARS.values():
        for op, bar, where in bars.values():
            assert op in (">=", ">", "<") and isinstance(bar, int | float) and where


def test_overrides_parse_numbers_and_reject_malformed_pairs():
    bench = load_benchmark()
    assert bench.parse_overrides(["teacher_steps=900", "lr=3e-3", "router=softmax"]) == {
        "teacher_steps": 900, "lr": 0.003, "router": "softmax"}
    with pytest.raises(SystemExit, match="key=value"):
        bench.parse_overrides(["teacher_steps"])
