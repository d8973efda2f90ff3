"""The fake OpenAI-compatible server (fake_openai_server.py) as fixtures: one per module, or any number per test."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import pytest

SERVER = Path(__file__).with_name("fake_openai_server.py")


class FakeServer:
    """A fake server process on 127.0.0.1; `requests(id)` reads back what it saw for one test's marker id."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"fake server did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def all_requests(self) -> list[dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as response:
            return json.load(response)["requests"]

    def requests(self, test_id: str) -> list[dict]:
        return [r for r in self.all_requests() if r["id"] == test_id]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    """One fake server shared by a module's tests (each test tells its requests apart by marker id)."""
    srv = FakeServer()
    yield srv
    srv.stop()


@pytest.fixture
def start_server() -> Iterator[Callable[..., FakeServer]]:
    """Start fake servers with command-line flags (`start_server("--api-key", "k")`); all stop after the test."""
    started: list[FakeServer] = []

    def start(*args: str) -> FakeServer:
        started.append(FakeServer(*args))
        return started[-1]

    yield start
    for srv in started:
        srv.stop()
