"""`sheetsync serve` runs on a production WSGI server: slow clients hold no thread (the pool
stays at its size however many connect), an idle or half-sent connection is closed after the
timeout, a real request is answered meanwhile, and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
SLOW_CLIENTS = 120


def threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def closed_by_server(s: socket.socket) -> bool:
    """The server ended the connection (perhaps after an error answer), as opposed to silence."""
    s.settimeout(2)
    try:
        while s.recv(1024):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    finally:
        s.close()


def test_slow_clients_hold_no_threads_and_are_dropped_after_the_timeout(demo_book, tmp_path):
    assert demo_book.parent == tmp_path  # the served folder holds demo.xlsx
    env = dict(os.environ, PYTHONPATH=str(REPO), SHEETSYNC_SERVE_TIMEOUT="2", SHEETSYNC_SERVE_THREADS="4",
               SHEETSYNC_SERVE_CONNECTIONS="500", SHEETSYNC_RUN_STORE=str(tmp_path / "store" / "runs.sqlite3"))
    proc = subprocess.Popen([sys.executable, "-m", "sheetsync", "serve", "--port", "0", "--folder", str(tmp_path),
                             "--token", "t" * 24], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        port = int(re.search(r":(\d+) ", first).group(1))
        idle_threads = threads_of(proc.pid)
        slow = []
        for _ in range(SLOW_CLIENTS):  # each sends half a request and then nothing
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /v1/runs HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n")
            slow.append(s)
        time.sleep(0.3)
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200
        assert time.monotonic() - started < 2
        assert threads_of(proc.pid) <= idle_threads + 4  # the pool, not a thread per client
        time.sleep(3.5)  # past SERVE_TIMEOUT: every half-sent connection is closed by the server
        assert all(closed_by_server(s) for s in slow)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
