"""Fixtures shared by the test modules."""

import socket

import pytest


@pytest.fixture
def busy_port():
    """A loopback port something is listening on, for the duration of the test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture
def fake_cuda(monkeypatch):
    """A function that makes this machine report one CUDA GPU with the given facts, as nvidia-smi would (free: 97% of
    the total unless given), while torch's own bf16 check says True, as it does on a T4: the GPU path's logic runs on
    a CPU. torch's memory query (which would open a CUDA context) fails if anything calls it."""
    import torch

    from course_utils import hardware

    def context_opened(*args, **kwargs):
        raise AssertionError("torch.cuda.mem_get_info opens a CUDA context: the course asks nvidia-smi instead")

    def fake(name: str, total_gib: float, capability: tuple[int, int], free_gib: float | None = None):
        facts = hardware.GPUFacts(name, total_gib, total_gib * 0.97 if free_gib is None else free_gib, capability)
        monkeypatch.setattr(hardware, "nvidia_smi_gpus", lambda: [facts])
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "mem_get_info", context_opened)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: name)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: capability)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)

    return fake
