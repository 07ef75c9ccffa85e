#!/usr/bin/env python3
"""Whether every event answered 200 outlives a crash of the server (the call journal).

Each run starts the binary with CALL_LOG_FILE in a fresh temporary directory and the
CALL_LOG_SYNC asked for, lets --connections keep-alive clients post calls (newCall, answer,
hangup; every callId unique) for --seconds, and kills the server with SIGKILL while they
are still posting. Then it opens the journal with Python's sqlite3 (which replays the
write-ahead log, as the next start of the server would) and holds the events the clients
saw answered 200 against the rows of `events`, by callId and event.

An event counts as acknowledged once its status line `200` arrived: the server writes it
only after the commit (or after a failed or late commit, which it logs; the run shows
those lines). Counted per run: events sent, acknowledged, in the journal, missing
(acknowledged but not in the journal), extra (in the journal but not acknowledged: the
commit made it, the answer did not reach the client before the kill; expected), rows
twice, and SQLite's integrity check. A run fails on a missing event, a row twice, or a
file that is not intact; the exit code is then 1.

Run it from the repository root:
  python3 scripts/crash.py --binary target/release/sipgateio-callevents \\
      [--sync normal,full] [--runs 5] [--seconds 3] [--connections 8] [--dir PARENT]

It talks to 127.0.0.1 only, and it is bounded: a run takes about --seconds plus a second
or two (each at most 60 s, at most 50 runs per mode, each client waits 10 s at most for an
answer). The server runs in an empty temporary directory with only PATH, RUST_LOG and its
settings; it is killed also on errors and Ctrl-C, and the directory removed unless --keep.
Python 3.11 standard library only.
"""

import argparse
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"  # the only address this script talks to
JOURNAL = "calls.sqlite"
ANSWER_TIMEOUT = 10.0  # past the server's 3 s commit wait, so a late answer is still seen
START_TIMEOUT = 10.0
# The log lines of the journal's trouble and of its end (src/journal/mod.rs).
JOURNAL_FAILED = "without being journaled first"
JOURNAL_RECOVERED = "journaled before their answer again"

FROM, TO = "4915799912345", "4921100000"
BODIES = {
    "newCall": ("/new-call", "event=newCall&direction=in&from={f}&to={t}&callId={id}"
                             "&user%5B%5D=Alice&user%5B%5D=Bob"),
    "answer": ("/on-answer", "event=answer&direction=in&from={f}&to={t}&callId={id}"
                             "&user=Alice&answeringNumber=4921100001"),
    "hangup": ("/on-hangup", "event=hangup&direction=in&from={f}&to={t}&callId={id}"
                             "&cause=normalClearing"),
}


def now():
    return time.monotonic()


def request(event, call_id):
    path, template = BODIES[event]
    body = template.format(f=FROM, t=TO, id=call_id).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\n"
        "Content-Type: application/x-www-form-urlencoded; charset=UTF-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Answers:
    """Reads the answers on one keep-alive connection (no pipelining: one at a time)."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def _more(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionAbortedError("closed by the server")
        self.buffer += data

    def status(self):
        """The status of the next answer, as soon as its status line is in."""
        while b"\r\n" not in self.buffer:
            self._more()
        line = self.buffer.split(b"\r\n", 1)[0].split()
        if len(line) < 2 or not line[0].startswith(b"HTTP/"):
            raise ValueError(f"not a status line: {line!r}")
        return int(line[1])

    def rest(self):
        """The rest of the answer: its body, which is then taken off the buffer."""
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return body


class Client(threading.Thread):
    """Posts calls on one keep-alive connection until the server is gone."""

    def __init__(self, port, tag, index, killed):
        super().__init__(daemon=True)
        self.port, self.tag, self.index, self.killed = port, tag, index, killed
        self.sent = set()
        self.acknowledged = set()
        self.other_statuses = {}
        self.latencies = []
        self.bad_answers = []
        self.errors_before_kill = []

    def run(self):
        call = 0
        # Posting goes on until the connection breaks, so the kill lands mid-load; `killed`
        # (set just before the signal) only says not to reconnect.
        while not self.killed.is_set():
            try:
                with socket.create_connection((HOST, self.port), timeout=ANSWER_TIMEOUT) as sock:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    answers = Answers(sock)
                    while True:
                        call_id = f"crash-{self.tag}-{self.index}-{call}"
                        call += 1
                        for event in BODIES:
                            self.post(sock, answers, event, call_id)
            except (OSError, ValueError) as error:
                if not self.killed.is_set():
                    self.errors_before_kill.append(repr(error))
                    time.sleep(0.05)

    def post(self, sock, answers, event, call_id):
        started = now()
        self.sent.add((call_id, event))
        sock.sendall(request(event, call_id))
        status = answers.status()
        if status == 200:
            # Before the body: the status line alone says the server answered 200.
            self.acknowledged.add((call_id, event))
            self.latencies.append(now() - started)
        else:
            self.other_statuses[status] = self.other_statuses.get(status, 0) + 1
        body = answers.rest()
        if status == 200 and event == "newCall" and b"<Response onAnswer=" not in body:
            self.bad_answers.append((call_id, body[:200]))


class Server:
    """The binary on a port of the kernel's choosing, its journal in a temporary directory."""

    def __init__(self, binary, sync, parent, keep):
        self.binary, self.sync, self.parent, self.keep = binary, sync, parent, keep
        self.proc = None
        self.port = None
        self.stderr_lines = []
        self.listening = threading.Event()

    def __enter__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="crash.", dir=self.parent))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "RUST_LOG": "info",
            "LISTEN_ADDR": f"{HOST}:0",
            "SKIP_SIGNATURE_VERIFICATION": "true",
            "CALL_LOG_FILE": str(self.dir / JOURNAL),
            "CALL_LOG_SYNC": self.sync,
        }
        self.stdout = open(self.dir / "stdout", "wb")
        try:
            self.proc = subprocess.Popen(
                [self.binary], cwd=self.dir, env=env, stdin=subprocess.DEVNULL,
                stdout=self.stdout, stderr=subprocess.PIPE, start_new_session=True,
            )
            self.reader = threading.Thread(target=self._read_stderr, daemon=True)
            self.reader.start()
            if not self.listening.wait(START_TIMEOUT):
                raise RuntimeError(f"the server did not log its address: {self.stderr_lines}")
            return self
        except BaseException:
            self.__exit__()
            raise

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.stderr_lines.append(line)
            if self.port is None and "listening on " in line:
                address = line.split("listening on ", 1)[1].split()[0]
                self.port = int(address.rsplit(":", 1)[1])
                self.listening.set()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.reader.join(timeout=2)

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stdout.close()
        if not self.keep:
            shutil.rmtree(self.dir)


def journal_rows(path):
    """(rows of (call_id, event), the integrity check's answer); replays the WAL, as a start does."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT call_id, event FROM events").fetchall()
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()
    return rows, integrity


def one_run(args, sync):
    tag = secrets.token_hex(4)
    with Server(args.binary, sync, args.dir, args.keep) as server:
        killed = threading.Event()
        clients = [Client(server.port, tag, index, killed) for index in range(args.connections)]
        started = now()
        for client in clients:
            client.start()
        time.sleep(args.seconds)
        killed.set()
        server.kill()
        load_seconds = now() - started
        for client in clients:
            client.join(timeout=ANSWER_TIMEOUT + 1)
        files = {p.name: p.stat().st_size for p in server.dir.iterdir() if p.name.startswith(JOURNAL)}
        rows, integrity = journal_rows(server.dir / JOURNAL)
        if args.keep:
            print(f"kept {server.dir}", file=sys.stderr)
        log = server.stderr_lines

    sent = set().union(*(c.sent for c in clients))
    acknowledged = set().union(*(c.acknowledged for c in clients))
    journaled = set(rows)
    latencies = sorted(l for c in clients for l in c.latencies)
    other_statuses = {}
    for client in clients:
        for status, count in client.other_statuses.items():
            other_statuses[status] = other_statuses.get(status, 0) + count
    return {
        "sync": sync,
        "load_s": round(load_seconds, 2),
        "sent": len(sent),
        "acknowledged": len(acknowledged),
        "journaled": len(journaled),
        "missing": sorted(acknowledged - journaled),
        "extra": len(journaled - acknowledged),
        "unknown": sorted(journaled - sent),
        "twice": len(rows) - len(journaled),
        "integrity": integrity,
        "other_statuses": other_statuses,
        "bad_answers": [a for c in clients for a in c.bad_answers],
        "errors_before_kill": [e for c in clients for e in c.errors_before_kill],
        "p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "files": files,
        "journal_log": [l for l in log if JOURNAL_FAILED in l or JOURNAL_RECOVERED in l],
    }


def failed(result):
    return bool(
        result["missing"] or result["unknown"] or result["twice"] or result["integrity"] != "ok"
        or result["bad_answers"] or result["acknowledged"] == 0
    )


def describe(number, runs, result):
    r = result
    line = (
        f"run {number}/{runs} CALL_LOG_SYNC={r['sync']}: killed after {r['load_s']} s; "
        f"sent {r['sent']}, acknowledged {r['acknowledged']} (p50 {r['p50_ms']} ms, "
        f"max {r['max_ms']} ms), in journal {r['journaled']}, missing {len(r['missing'])}, "
        f"extra {r['extra']}, rows twice {r['twice']}, integrity {r['integrity']}"
    )
    notes = []
    if r["other_statuses"]:
        notes.append(f"other statuses {r['other_statuses']}")
    if r["unknown"]:
        notes.append(f"rows never sent: {r['unknown'][:5]}")
    if r["missing"]:
        notes.append(f"missing (first 5): {r['missing'][:5]}")
    if r["bad_answers"]:
        notes.append(f"newCall answered without its XML: {r['bad_answers'][:3]}")
    if r["errors_before_kill"]:
        notes.append(f"connection errors before the kill: {r['errors_before_kill'][:3]}")
    if r["journal_log"]:
        notes.append(f"journal log: {r['journal_log']}")
    if r["acknowledged"] == 0:
        notes.append("nothing was acknowledged: the run proves nothing")
    return "\n  ".join([line] + notes)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True, help="the sipgateio-callevents binary")
    parser.add_argument("--sync", default="normal,full",
                        help="comma-separated CALL_LOG_SYNC values, each run --runs times "
                        "(normal,full)")
    parser.add_argument("--runs", type=int, default=5, help="runs per sync mode (5, at most 50)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="load before the kill (3, at most 60)")
    parser.add_argument("--connections", type=int, default=8,
                        help="concurrent keep-alive clients (8, at most 256)")
    parser.add_argument("--dir", default=None,
                        help="where the temporary directories go (the system's default); "
                        "a tmpfs makes CALL_LOG_SYNC=full cost nothing")
    parser.add_argument("--keep", action="store_true",
                        help="keep each run's directory (journal, stdout) and print its path")
    args = parser.parse_args()
    args.binary = str(Path(args.binary).resolve())  # the server runs in a directory of its own
    args.sync = args.sync.split(",")
    for sync in args.sync:
        if sync not in ("normal", "full"):
            parser.error(f"--sync {sync!r}: expected normal or full")
    if not 1 <= args.runs <= 50:
        parser.error("--runs: 1 to 50")
    if not 0 < args.seconds <= 60:
        parser.error("--seconds: more than 0, at most 60")
    if not 1 <= args.connections <= 256:
        parser.error("--connections: 1 to 256")
    return args


def main():
    args = parse_args()
    # A SIGTERM ends the runs as a Ctrl-C does: the server is killed, the directory removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    results, any_failed = [], False
    try:
        for sync in args.sync:
            for number in range(1, args.runs + 1):
                result = one_run(args, sync)
                results.append(result)
                any_failed |= failed(result)
                print(describe(number, args.runs, result), flush=True)
    except KeyboardInterrupt:
        print("interrupted: the totals hold the runs that finished", file=sys.stderr)
        any_failed = True
    for sync in args.sync:
        mine = [r for r in results if r["sync"] == sync]
        if not mine:
            continue
        print(
            f"CALL_LOG_SYNC={sync}: {len(mine)} runs, "
            f"acknowledged {sum(r['acknowledged'] for r in mine)}, "
            f"in journal {sum(r['journaled'] for r in mine)}, "
            f"missing {sum(len(r['missing']) for r in mine)}, "
            f"extra {sum(r['extra'] for r in mine)}, rows twice {sum(r['twice'] for r in mine)}, "
            f"failed runs {sum(failed(r) for r in mine)}",
            flush=True,
        )
    return 1 if any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
