"""tools/gpu_check.py (make gpu-check): its report and its refusals, on a CPU with faked device facts."""

import importlib.util
from pathlib import Path

import nbformat

from course_utils import hardware

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def test_without_a_gpu_it_stops_at_once_and_says_why(monkeypatch, capsys):
    monkeypatch.setattr(hardware, "detect_device", lambda: hardware.Device("cpu", "CPU", 0, 24, 24, True, 2, 24))
    monkeypatch.setattr("sys.argv", ["gpu_check.py"])
    assert gpu_check.main() == 2
    assert "needs a CUDA GPU" in capsys.readouterr().out


def test_an_old_driver_is_refused_with_the_fix(monkeypatch, capsys, fake_cuda):
    fake_cuda("Tesla T4", 15.0, (7, 5))
    monkeypatch.setattr(gpu_check.flavour, "driver_cuda_version", lambda: (12, 4))
    monkeypatch.setattr("sys.argv", ["gpu_check.py"])
    assert gpu_check.main() == 2
    assert "580" in capsys.readouterr().out


def test_the_plan_names_the_models_downloads_and_estimates(fake_cuda):
    fake_cuda("Tesla T4", 15.0, (7, 5))
    lines = gpu_check.plan_lines(hardware.detect_device(), (13, 0))
    assert "Tesla T4" in lines[0] and "native bf16: False" in lines[0] and "13.0" in lines[0]
    assert lines[1].startswith("Notebook 03 (full mode): deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B on this Tesla T4")
    assert "downloads: about 3.6 GB" in lines[1] and "TRITON_ATTN" in lines[1]     # a T4: below compute 8.0
    assert lines[2].startswith("Notebook 04 (full mode): DeepSeek-R1-Distill-Qwen-1.5B")
    assert "not a measurement" in lines[2]


def test_summary_text_reads_the_summary_cells_output(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("summary = Summary('run')\nsummary", outputs=[
                    nbformat.v4.new_output("execute_result", data={"text/plain": "{'a': 1}"}, execution_count=2)])]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert gpu_check.summary_text(path) == "{'a': 1}"
