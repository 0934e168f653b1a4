"""Fixtures of the weights tests: the 127.0.0.1 server and a fresh download cache."""
import pytest

from tests.weights_server import Server


@pytest.fixture
def server():
    """A fresh 127.0.0.1 server (tests/weights_server.py), stopped after the test."""
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """TOME_CACHE pointed at an empty folder of this test; returns the folder."""
    root = tmp_path / "cache"
    monkeypatch.setenv("TOME_CACHE", str(root))
    return root
