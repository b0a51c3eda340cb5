"""What the HTTP benchmarks share: a uvicorn server of the real app, an open-loop client and
the server's CPU clock.

The client is wrk2-style: request i is due at ``start_at + i / rate`` whatever happened before,
and its latency runs from that due time, so a slow server is charged for the queue it builds
(no coordinated omission). Used by ``serving.py`` and ``load.py`` (both run as scripts, so
this folder is on ``sys.path``).
"""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int, workers: int,
                 ready_timeout_s: float = 90.0) -> subprocess.Popen:
    """``uvicorn serving.app:create_app`` (uvloop, httptools, no access log) with ``env`` on
    top of this process's environment; returns once ``/readyz`` answers 200."""
    cmd = [sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--host",
           "127.0.0.1", "--port", str(port), "--workers", str(workers), "--loop", "uvloop",
           "--http", "httptools", "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    deadline = time.time() + ready_timeout_s
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 200 " in s.recv(200):
                    return proc
        except OSError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError(f"server did not become ready within {ready_timeout_s:.0f} s")


def stop_server(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGTERM ``proc`` (uvicorn and its workers), SIGKILL it if it has not left in time."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def post_request(path: str, body: bytes, token: str | None = None) -> bytes:
    """The raw bytes of one keep-alive ``POST path`` with a JSON body."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{auth}Content-Length: {len(body)}\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response with a Content-Length body; its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def open_loop(port: int, payload: bytes, rate: float, duration: float,
                    max_conns: int, start_at: float) -> dict:
    """Send ``payload`` at a constant ``rate`` (requests/s) for ``duration`` s from the wall
    clock tick ``start_at``; latency of request i from its due time. Returns
    ``{"latency_s", "errors" (kind -> count), "requests", "elapsed_s", "client_cpu_s"}``
    (``client_cpu_s``: this process's CPU while sending — the load generator shares the cores
    with the server)."""
    idle: asyncio.Queue = asyncio.Queue()
    n_open = 0
    lat: list[float] = []
    errors: Counter = Counter()
    n = int(rate * duration)

    async def conn():
        nonlocal n_open
        if not idle.empty():
            return idle.get_nowait()
        if n_open < max_conns:
            n_open += 1
            return await asyncio.open_connection("127.0.0.1", port)
        return await idle.get()

    async def one(due: float):
        try:
            reader, writer = await conn()
            writer.write(payload)
            async with asyncio.timeout(10):  # no extra task per request (wait_for makes one)
                status = await read_response(reader)
            idle.put_nowait((reader, writer))
            if status != 200:
                errors[str(status)] += 1
        except Exception as exc:  # noqa: BLE001 - any failure counts as an error
            errors[type(exc).__name__] += 1
        lat.append(time.time() - due)

    tasks = []
    cpu_start = time.process_time()
    for i in range(n):
        due = start_at + i / rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    return {"latency_s": lat, "errors": dict(errors), "requests": n,
            "elapsed_s": time.time() - start_at,
            "client_cpu_s": time.process_time() - cpu_start}


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` and its direct children (uvicorn workers), in s."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total
