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
