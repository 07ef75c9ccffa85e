#!/usr/bin/env python3
"""Start-up time to the first answered request, for bench/run.sh.

    startup.py N ENV_FILE -- COMMAND...

Starts COMMAND N times, each on a fresh loopback port (LISTEN_ADDR), with exactly the
variables in ENV_FILE (NAME=value lines) plus PATH, in an empty working directory. Times
from just before the process is spawned to the first complete `200` answer to
`GET /health`, polled in a tight loop; then stops the process (SIGTERM, then SIGKILL).
Prints `startup_ms median=… min=… max=… n=…`.
"""

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

DEADLINE_S = 10.0


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answered(port):
    """True once GET /health gets a 200 status line; False while nothing listens."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n" not in data:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main():
    count = int(sys.argv[1])
    env_file = sys.argv[2]
    command = sys.argv[sys.argv.index("--") + 1 :]
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    with open(env_file, encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if line and "=" in line:
                name, value = line.split("=", 1)
                base_env[name] = value
    samples = []
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(count):
            port = free_port()
            env = dict(base_env, LISTEN_ADDR=f"127.0.0.1:{port}")
            start = time.perf_counter()
            process = subprocess.Popen(
                command,
                env=env,
                cwd=workdir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                while not answered(port):
                    if process.poll() is not None:
                        sys.exit(f"startup.py: {command[0]} exited with {process.returncode}")
                    if time.perf_counter() - start > DEADLINE_S:
                        sys.exit(f"startup.py: no answer within {DEADLINE_S} s")
                samples.append((time.perf_counter() - start) * 1000)
            finally:
                stop(process)
    print(
        f"startup_ms median={statistics.median(samples):.2f} "
        f"min={min(samples):.2f} max={max(samples):.2f} n={len(samples)}"
    )


if __name__ == "__main__":
    main()
