"""Fixtures of the scheduler tests: a real `redis-server` on a free loopback port (started
once per session, flushed per test), a simulated clock, and stores in tmp folders."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from schedule_sim import SimClock


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    server = shutil.which("redis-server")
    assert server, "redis-server is required (Debian package redis-server)"
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    for _ in range(200):  # up in a few ms; poll briefly rather than sleep a fixed time
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def clock() -> SimClock:
    return SimClock()
