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
    """A function that makes torch report one CUDA GPU with the given facts (torch's own bf16 check says True, as
    it does on a T4): the GPU path's logic runs on a CPU."""
    import torch

    from course_utils import hardware

    def fake(name: str, total_gib: float, capability: tuple[int, int]):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (int(total_gib * 0.97 * hardware.GIB),
                                                                     int(total_gib * hardware.GIB)))
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: name)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: capability)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)

    return fake
