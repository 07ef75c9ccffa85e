#!/usr/bin/env python3
"""How the server fares against the attacks a public URL meets, measured on the loopback.

Each scenario starts a fresh server on 127.0.0.1 and checks that it answers the signed real
capture (tests/fixtures/18-signed-real-capture.*) with 200. It then attacks the server while
a probe sends that capture every 100 ms, one at a time, each on a new connection with a 2 s
limit (so a server that does not answer gets one probe per 2 s), and probes 5 more times once
the attack is over. One markdown table row per scenario: whether the server still runs at the
end (or its exit code and last stderr line); how many probes got 200 during and after the
attack, and how fast; the server's threads and open descriptors before, at the peak and a few
seconds after the attack (from /proc, sampled every 100 ms); its memory after the attack
(VmRSS) and at its highest (VmHWM).

Scenarios (pick some with --only):
  http2-lines      K connections send an HTTP/2.0 preface or request line and close (nofile 1024)
  idle             700 connections that send nothing, held 15 s (nofile 1024)
  idle-5000        5,000 of them, held until the server closes them (at most --idle-wait s)
  upgrade          4 POSTs with `Connection: Upgrade` and no body, held open 10 s
  pipeline         4 connections write 30,000 pipelined GETs each and never read; held 15 s
  pipeline-100k    the same with 100,000 requests each
  headers          8 parallel requests of 1,000,000 headers each, 3 rounds on one server
  big-header-line  one request with a 100 MB header line
  slow-head        one header byte a second for 30 s
  endless-body     a body declared and sent far over MAX_BODY_BYTES, as fast as taken, 40 s
  slow-heads       700 connections that each send a header byte a second (nofile 1024),
                   held until the server closes them (at most --idle-wait s)

Run it from the repository root:
  python3 scripts/attacks.py --binary target/release/sipgateio-callevents \\
      [--only idle,upgrade] [--env READ_TIMEOUT_SECONDS=10] [--json attacks.json]

It connects to 127.0.0.1 only, and it is bounded: each scenario ends within about a minute,
all of them within about 10 minutes. The server runs in an empty temporary directory with
only PATH, LISTEN_ADDR and the --env settings, and is stopped after each scenario (SIGTERM,
then SIGKILL after 5 s), also on errors and Ctrl-C. Python 3.11 standard library only.
"""

import argparse
import collections
import contextlib
import errno
import json
import os
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"  # the only address this script talks to: these are attacks
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
BODY = (FIXTURES / "18-signed-real-capture.form").read_bytes()
SIGNATURE = (FIXTURES / "18-signed-real-capture.sig").read_text().strip()
PROBE_TIMEOUT = 2.0
PROBE_EVERY = 0.1
PROBES_AFTER = 5


def now():
    return time.monotonic()


def recv_by(sock, deadline):
    """The next bytes on `sock`; raises on a timeout at `deadline` or on the server's close."""
    sock.settimeout(max(deadline - now(), 0.001))
    data = sock.recv(65536)
    if not data:
        raise ConnectionAbortedError("closed by the server")
    return data


def read_status_line(sock, deadline):
    """The answer's status line without its protocol, e.g. `400 Bad Request`."""
    buffer = b""
    while b"\r\n" not in buffer:
        buffer += recv_by(sock, deadline)
    line = buffer.split(b"\r\n", 1)[0].decode("latin-1")
    return line.split(" ", 1)[1] if line.startswith("HTTP/") and " " in line else line


def probe(port):
    """One signed newCall on a new connection: (status or None, seconds, what went wrong)."""
    start = now()
    deadline = start + PROBE_TIMEOUT
    request = (
        f"POST /new-call HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"X-Sipgate-Signature: {SIGNATURE}\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    try:
        with socket.create_connection((HOST, port), timeout=PROBE_TIMEOUT) as sock:
            sock.sendall(request)
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                buffer += recv_by(sock, deadline)
            head, _, body = buffer.partition(b"\r\n\r\n")
            status = int(head.split(None, 2)[1])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            # Answered means the whole answer arrived, not just its first bytes.
            while len(body) < length:
                body += recv_by(sock, deadline)
            return status, now() - start, ""
    except (OSError, ValueError, IndexError) as error:
        return None, now() - start, type(error).__name__


def summarize(probes):
    latencies = [seconds * 1000 for _, seconds, _ in probes]
    failures = collections.Counter(
        error or str(status) for status, _, error in probes if status != 200
    )
    return {
        "answered": sum(status == 200 for status, _, _ in probes),
        "total": len(probes),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        # The bound a normal event must be answered within, during and after an attack.
        "over_100ms": sum(ms > 100 for ms in latencies),
        "failures": dict(failures),
    }


class Server:
    """The binary under test on a free loopback port, in an empty directory of its own."""

    def __init__(self, binary, env, nofile, soft_only=False):
        self.binary, self.env, self.nofile, self.soft_only = binary, env, nofile, soft_only
        self.proc = None
        self.stopped = None

    def __enter__(self):
        with socket.socket() as probe_socket:
            probe_socket.bind((HOST, 0))
            self.port = probe_socket.getsockname()[1]
        self.dir = tempfile.TemporaryDirectory(prefix="attacks.")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LISTEN_ADDR": f"{HOST}:{self.port}",
            **self.env,
        }
        nofile, soft_only = self.nofile, self.soft_only

        def limit():
            # Soft and hard alike, as systemd's LimitNOFILE does: the server cannot raise it.
            # With --soft-only, as a login shell's 1024 under a higher hard limit: it can.
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard if soft_only else nofile))

        self.stdout = open(Path(self.dir.name, "stdout"), "wb")
        self.stderr = open(Path(self.dir.name, "stderr"), "wb")
        try:
            # A session of its own, so a Ctrl-C reaches only this script, which stops it.
            self.proc = subprocess.Popen(
                [self.binary], cwd=self.dir.name, env=env, stdin=subprocess.DEVNULL,
                stdout=self.stdout, stderr=self.stderr, preexec_fn=limit, start_new_session=True,
            )
            deadline = now() + 10
            while now() < deadline:
                if not self.alive():
                    raise RuntimeError(f"the server did not start: {self.state()}")
                if probe_health(self.port):
                    return self
                time.sleep(0.05)
            raise RuntimeError("GET /health did not answer 200 within 10 s")
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc):
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                start = now()
                self.proc.wait(timeout=5)
                self.stopped = f"exit {self.proc.returncode} {now() - start:.1f} s after SIGTERM"
        except subprocess.TimeoutExpired:
            self.stopped = "SIGTERM did not stop it in 5 s; SIGKILL"
        finally:
            # Also when a second Ctrl-C cut the wait short.
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.stdout.close()
            self.stderr.close()
            self.dir.cleanup()

    def alive(self):
        return self.proc.poll() is None

    def state(self):
        """`alive`, or how the process ended and the last line it wrote to stderr."""
        code = self.proc.poll()
        if code is None:
            return "alive"
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
        with open(self.stderr.name, "rb") as log:
            log.seek(max(os.path.getsize(self.stderr.name) - 8192, 0))
            lines = log.read().decode(errors="replace").strip().splitlines()
        return f"{how}: {lines[-1].strip()}" if lines else how

    def snapshot(self):
        """Threads, open descriptors and memory from /proc, or None once the process is gone."""
        if not self.alive():
            return None
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
            fds = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return None
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if "VmRSS" not in fields:  # exited, not yet reaped
            return None
        rss_kb, hwm_kb = (int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM"))
        return {
            "threads": int(fields["Threads"]),
            "fds": fds,
            "rss_mb": round(rss_kb / 1024, 1),
            "hwm_mb": round(hwm_kb / 1024, 1),
        }


def probe_health(port):
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return read_status_line(sock, now() + 1).startswith("200")
    except OSError:
        return False


class Run:
    """One scenario's numbers around its attack: probes and /proc samples, kept in `data`."""

    def __init__(self, server, data):
        self.server = server
        self.data = data
        self.peak = {}
        self.last_seen = None
        self.attack_ended = None
        self.attack_started = None
        self.stopping = threading.Event()

    def _sample(self):
        while not self.stopping.wait(0.1):
            snapshot = self.server.snapshot()
            if not snapshot and "exited_after_s" not in self.data and not self.server.alive():
                # How long the server lasted, from the start of the attack.
                self.data["exited_after_s"] = round(now() - self.attack_started, 1)
            if snapshot:
                self.last_seen = snapshot
                for key, value in snapshot.items():
                    self.peak[key] = max(self.peak.get(key, value), value)

    def _probe_on(self, probes, done):
        while not done.is_set():
            started = now()
            probes.append(probe(self.server.port))
            done.wait(max(PROBE_EVERY - (now() - started), 0))

    @contextlib.contextmanager
    def attack(self):
        """Probes and samples while the block runs; the attack ends when it is left."""
        self.attack_started = now()
        threading.Thread(target=self._sample, daemon=True).start()
        probes, done = [], threading.Event()
        prober = threading.Thread(target=self._probe_on, args=(probes, done), daemon=True)
        prober.start()
        try:
            yield
        finally:
            done.set()
            prober.join()
            self.attack_ended = now()
            self.data["during"] = summarize(probes)

    def after(self, settle, later=None):
        """Probes after the attack, then threads and fds `settle` (and `later`) s after it."""
        probes = []
        for _ in range(PROBES_AFTER):
            probes.append(probe(self.server.port))
            time.sleep(PROBE_EVERY)
        self.data["after"] = summarize(probes)
        time.sleep(max(self.attack_ended + settle - now(), 0))
        self.data["after_snapshot"] = self.server.snapshot()
        if later:
            time.sleep(max(self.attack_ended + later - now(), 0))
            status, seconds, error = probe(self.server.port)
            snapshot = self.server.snapshot()
            self.data["later"] = {"seconds": later, "snapshot": snapshot, "probe": status or error}
        self.stopping.set()
        self.data["peak"] = self.peak
        self.data["last_seen"] = self.last_seen


def watch(port, count, payload, hold, trickle_every=None):
    """Opens `count` connections at once (non-blocking, so thousands are cheap), sends
    `payload` on each, then reads whatever comes back until `hold` seconds have passed or
    the server has closed them all; with `trickle_every`, also sends one more byte on each
    open connection every that many seconds. One dict per connection: seconds from
    connect to connected and to the server's close (FIN or reset), and the first bytes
    it sent."""
    selector = selectors.DefaultSelector()
    conns = []
    next_byte = now() + (trickle_every or 0)
    try:
        for _ in range(count):
            conn = {"started": now(), "connected": None, "closed_after": None, "reply": b""}
            conns.append(conn)
            sock = socket.socket()
            sock.setblocking(False)
            code = sock.connect_ex((HOST, port))
            if code not in (0, errno.EINPROGRESS):
                conn["error"] = errno.errorcode.get(code, str(code))
                sock.close()
                continue
            selector.register(sock, selectors.EVENT_WRITE, conn)
        deadline = now() + hold
        while now() < deadline and selector.get_map():
            if trickle_every and now() >= next_byte:
                next_byte += trickle_every
                for key in list(selector.get_map().values()):
                    if key.data["connected"] is not None:
                        with contextlib.suppress(OSError):
                            key.fileobj.send(b"a")
            for key, _ in selector.select(timeout=0.1):
                sock, conn = key.fileobj, key.data
                if conn["connected"] is None:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        conn["error"] = errno.errorcode.get(code, str(code))
                        selector.unregister(sock)
                        sock.close()
                        continue
                    conn["connected"] = now() - conn["started"]
                    selector.modify(sock, selectors.EVENT_READ, conn)
                    with contextlib.suppress(OSError):  # a reset shows as the close below
                        sock.send(payload)  # a new socket's buffer takes a few hundred bytes whole
                    continue
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionError:
                    data = b""
                if data:
                    conn["reply"] = (conn["reply"] + data)[:512]
                else:
                    conn["closed_after"] = now() - conn["started"]
                    selector.unregister(sock)
                    sock.close()
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()
    return conns


def describe_closes(conns):
    connected = sum(conn["connected"] is not None for conn in conns)
    closed = [conn["closed_after"] for conn in conns if conn["closed_after"] is not None]
    failed = sum("error" in conn for conn in conns)
    text = f"{connected}/{len(conns)} connected" + (f" ({failed} failed)" if failed else "")
    text += f"; server closed {len(closed)}"
    if closed:
        text += f", after {min(closed):.1f}–{max(closed):.1f} s"
    return text


def send_and_read(port, parts, seconds):
    """Sends `parts` on a new connection and reads the answer's status line, all within
    `seconds`: the status line, or what happened instead."""
    deadline = now() + seconds
    sent, problem = 0, None
    try:
        with socket.create_connection((HOST, port), timeout=seconds) as sock:
            try:
                for part in parts:
                    sock.settimeout(max(deadline - now(), 0.001))
                    sock.sendall(part)
                    sent += len(part)
            except OSError as error:
                problem = type(error).__name__  # it may have answered before reading it all
            try:
                return read_status_line(sock, deadline)
            except OSError as error:
                problem = problem or type(error).__name__
    except OSError as error:
        problem = type(error).__name__
    return f"no answer ({problem} after sending {sent / 1e6:.1f} MB)"


def in_threads(function, arguments, seconds):
    """Calls `function` with each tuple of `arguments` on a thread of its own; waits for
    them at most `seconds` in all (they are daemons: one stuck cannot keep the script)."""
    threads = [threading.Thread(target=function, args=a, daemon=True) for a in arguments]
    for thread in threads:
        thread.start()
    deadline = now() + seconds
    for thread in threads:
        thread.join(timeout=max(deadline - now(), 0))


def count_replies(replies):
    return ", ".join(f"{reply} ×{n}" for reply, n in collections.Counter(replies).most_common())


# The scenarios: each runs its attack inside `run.attack()` and returns the table's note.

def http2_lines(server, run, args):
    lines = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"POST /new-call HTTP/2.0\r\nHost: x\r\n\r\n")
    numbers = iter(range(args.http2_connections))
    counts = collections.Counter()
    lock = threading.Lock()
    deadline = now() + 20  # a server that stops accepting makes every connect wait

    def send_lines():
        while now() < deadline:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            try:
                with socket.create_connection((HOST, server.port), timeout=1) as sock:
                    sock.sendall(lines[number % 2])
                outcome = "sent"
            except OSError:
                outcome = "failed"
            with lock:
                counts[outcome] += 1

    with run.attack():
        start = now()
        in_threads(send_lines, [()] * 8, deadline - now() + 2)
        seconds = now() - start
    run.data.update(sent=counts["sent"], connect_failed=counts["failed"])
    return f"{counts['sent']} sent in {seconds:.1f} s, {counts['failed']} connects failed"


def idle(count, hold=None):
    """`hold` None: until the server closes them, at most --idle-wait seconds."""
    def scenario(server, run, args):
        seconds = hold or args.idle_wait
        with run.attack():
            conns = watch(server.port, count, b"", seconds)
        closed = [conn["closed_after"] for conn in conns if conn["closed_after"] is not None]
        run.data["closed"] = {"count": len(closed), "max_s": max(closed, default=None), "of": count}
        return describe_closes(conns) + f" (held at most {seconds:.0f} s)"
    return scenario


def slow_heads(count):
    def scenario(server, run, args):
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
        with run.attack():
            conns = watch(server.port, count, head, args.idle_wait, trickle_every=1.0)
        closed = [conn["closed_after"] for conn in conns if conn["closed_after"] is not None]
        run.data["closed"] = {"count": len(closed), "max_s": max(closed, default=None), "of": count}
        return describe_closes(conns) + f" (a byte a second each, held at most {args.idle_wait:.0f} s)"
    return scenario


def upgrade(server, run, args):
    request = (
        b"POST /new-call HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    )
    with run.attack():
        conns = watch(server.port, 4, request, 10)
    replies = [conn["reply"].split(b"\r\n", 1)[0].decode("latin-1") or "nothing" for conn in conns]
    run.data["replies"] = replies
    return f"got {count_replies(replies)}; " + describe_closes(conns)


def pipeline(per_connection):
    def scenario(server, run, args):
        request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        data = memoryview(request * per_connection)
        written = [0] * args.pipeline_connections
        failed = collections.Counter()
        hold_until = now() + 15

        def write(index, sock):
            # A send timeout, so a server that stops reading cannot block this thread for good.
            sock.settimeout(0.5)
            while written[index] < len(data) and now() < hold_until:
                try:
                    written[index] += sock.send(data[written[index]:written[index] + 65536])
                except TimeoutError:
                    continue
                except OSError as error:  # the server closed it
                    failed[type(error).__name__] += 1
                    return

        socks = []
        with run.attack():
            try:
                for _ in written:
                    socks.append(socket.create_connection((HOST, server.port), timeout=2))
                in_threads(write, enumerate(socks), hold_until - now() + 2)
                time.sleep(max(hold_until - now(), 0))
            finally:
                for sock in socks:
                    sock.close()
        run.data.update(requests_written=[n // len(request) for n in written], failed=failed)
        total = len(written) * per_connection
        note = f"{sum(written) // len(request):,} of {total:,} requests written"
        return note + (f"; writes ended by {count_replies(failed.elements())}" if failed else "")
    return scenario


def headers(server, run, args):
    parts = (b"POST /health HTTP/1.1\r\n", b"X-a: b\r\n" * 1_000_000, b"\r\n")
    rounds = []
    with run.attack():
        for _ in range(3):
            replies = [None] * 8

            def send(index):
                replies[index] = send_and_read(server.port, parts, 12)

            in_threads(send, [(index,) for index in range(8)], 14)
            # The peak is the round's; what is still held 5 s later is what the round left behind.
            peak = server.snapshot()
            time.sleep(5)
            later = server.snapshot()
            rounds.append({
                "replies": replies,
                "hwm_mb": peak and peak["hwm_mb"],
                "rss_5s_after_mb": later and later["rss_mb"],
            })
    run.data["rounds"] = rounds
    hwm = "/".join(str(r["hwm_mb"]) for r in rounds)
    rss = "/".join(str(r["rss_5s_after_mb"]) for r in rounds)
    replies = count_replies(reply for r in rounds for reply in r["replies"])
    return f"rounds 1/2/3: HWM {hwm} MB, RSS 5 s later {rss} MB; {replies}"


def big_header_line(server, run, args):
    megabyte = b"a" * (1 << 20)
    parts = [b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ", *[megabyte] * 100, b"\r\n\r\n"]
    with run.attack():
        reply = send_and_read(server.port, parts, 40)
    run.data["reply"] = reply
    return f"got {reply}"


def slow_head(server, run, args):
    outcome, reply = None, b""
    with run.attack():
        with socket.create_connection((HOST, server.port), timeout=2) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            start = now()
            selector = selectors.DefaultSelector()
            selector.register(sock, selectors.EVENT_READ)
            for second in range(1, 31):
                # Until the next byte is due, watch for an answer or the server's close.
                while not outcome and (wait := start + second - now()) > 0:
                    if not selector.select(wait):
                        break
                    try:
                        data = sock.recv(4096)
                    except ConnectionError:
                        data = b""
                    if not data:
                        outcome = f"server closed it after {now() - start:.1f} s"
                    reply += data
                if outcome:
                    break
                try:
                    sock.send(b"a")
                except OSError as error:
                    outcome = f"send failed after {now() - start:.1f} s ({type(error).__name__})"
            selector.close()
    outcome = outcome or "still open after 30 s"
    reply = reply.split(b"\r\n", 1)[0].decode("latin-1")
    run.data.update(outcome=outcome, reply=reply)
    return outcome + (f"; got {reply}" if reply else "")


def endless_body(server, run, args):
    """A body far over MAX_BODY_BYTES, sent as fast as the server takes it after its 413:
    tiny_http reads and discards the declared length."""
    head = (
        b"POST /on-hangup HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000000000\r\n\r\n"
    )
    outcome, reply, sent = None, b"", 0
    chunk = b"x" * 65536
    with run.attack():
        with socket.create_connection((HOST, server.port), timeout=2) as sock:
            sock.sendall(head)
            start = now()
            selector = selectors.DefaultSelector()
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while not outcome and now() - start < 40:
                for _, events in selector.select(timeout=0.5):
                    try:
                        if events & selectors.EVENT_READ:
                            data = sock.recv(4096)
                            if not data:
                                outcome = f"server closed it after {now() - start:.1f} s"
                                break
                            reply += data
                        if events & selectors.EVENT_WRITE:
                            sent += sock.send(chunk)
                    except OSError as error:
                        outcome = f"{type(error).__name__} after {now() - start:.1f} s"
                        break
            selector.close()
    outcome = outcome or "still open after 40 s"
    reply = reply.split(b"\r\n", 1)[0].decode("latin-1")
    run.data.update(outcome=outcome, reply=reply, sent_mb=round(sent / 1e6))
    return f"{outcome}, {sent / 1e6:.0f} MB sent" + (f"; got {reply}" if reply else "")


# nofile: the server's default open-file limit (else the hard limit); settle: seconds from
# the attack's end to the "after" numbers; later: one more look at threads and fds.
Scenario = collections.namedtuple(
    "Scenario", "attack nofile settle later", defaults=(None, 3, None)
)


SCENARIOS = {
    "http2-lines": Scenario(http2_lines, nofile=1024, later=25),
    "idle": Scenario(idle(700, hold=15), nofile=1024),
    "idle-5000": Scenario(idle(5000), nofile=20000),
    "upgrade": Scenario(upgrade),
    "pipeline": Scenario(pipeline(30_000)),
    "pipeline-100k": Scenario(pipeline(100_000), settle=5),
    "headers": Scenario(headers),
    "big-header-line": Scenario(big_header_line, settle=5),
    "slow-head": Scenario(slow_head),
    "slow-heads": Scenario(slow_heads(700), nofile=1024),
    "endless-body": Scenario(endless_body),
}


def run_scenario(name, args, hard_limit):
    scenario = SCENARIOS[name]
    nofile = min(args.nofile or scenario.nofile or hard_limit, hard_limit)
    data = {"scenario": name, "nofile": nofile}
    started = now()
    try:
        with Server(args.binary, args.env, nofile, args.soft_only) as server:
            run = Run(server, data)
            status, seconds, error = probe(server.port)
            data["baseline"] = {"status": status or error, "ms": round(seconds * 1000, 1)}
            data["before"] = server.snapshot()
            try:
                data["note"] = scenario.attack(server, run, args)
                run.after(scenario.settle, scenario.later)
            finally:
                run.stopping.set()
            data["end"] = server.state()
        data["stopped"] = server.stopped
    except Exception as error:  # one broken scenario should not cost the others' rows
        data["error"] = f"{type(error).__name__}: {error}"
    data["seconds"] = round(now() - started, 1)
    return data


def slow(probes):
    """How many probes took over 100 ms, when any did."""
    count = probes.get("over_100ms", 0)
    return f" ({count} > 100 ms)" if count else ""


def table(results):
    def cell(text):
        return str(text).replace("|", "\\|").replace("\n", " ")

    def triple(data, key):
        snaps = (data.get("before"), data.get("peak"), data.get("after_snapshot"))
        return "/".join(str(snap[key]) if snap else "–" for snap in snaps)

    rows = [
        "| scenario | server at end | during: ok/n, p50/max ms | after: ok/n, max ms "
        "| threads before/peak/after | fds before/peak/after | RSS after / HWM MB | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for data in results:
        if "error" in data:
            rows.append(f"| {data['scenario']} | {cell(data['error'])} |  |  |  |  |  |  |")
            continue
        during, after = data["during"], data["after"]
        if snap := data.get("after_snapshot"):
            memory = f"{snap['rss_mb']} / {snap['hwm_mb']}"
        elif snap := data.get("last_seen"):
            memory = f"– / {snap['hwm_mb']} (last seen)"
        else:
            memory = "–"
        note = data.get("note", "")
        if data["baseline"]["status"] != 200:
            note = f"baseline probe: {data['baseline']['status']}; " + note
        if later := data.get("later"):
            snap = later["snapshot"]
            seen = f"threads {snap['threads']}, fds {snap['fds']}" if snap else "gone"
            note += f"; {later['seconds']} s later: {seen}, probe {later['probe']}"
        if data.get("stopped") and not data["stopped"].startswith("exit 0"):
            note += f"; stop: {data['stopped']}"
        end = data["end"] if len(data["end"]) <= 200 else data["end"][:197] + "..."
        if "exited_after_s" in data:
            end = f"(after {data['exited_after_s']} s) {end}"
        rows.append(
            f"| {data['scenario']} (nofile {data['nofile']}) | {cell(end)} "
            f"| {during['answered']}/{during['total']}, {during['p50_ms']}/{during['max_ms']}"
            f"{slow(during)} "
            f"| {after['answered']}/{after['total']}, {after['max_ms']}{slow(after)} "
            f"| {triple(data, 'threads')} | {triple(data, 'fds')} | {memory} | {cell(note)} |"
        )
    return "\n".join(rows)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True, help="the sipgateio-callevents binary")
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--env", action="append", default=[], metavar="NAME=value",
                        help="a setting for the server (repeatable)")
    parser.add_argument("--nofile", type=int, metavar="N",
                        help="the server's open-file limit in every scenario (default: 1024 for "
                        "http2-lines and idle, else this script's hard limit)")
    parser.add_argument("--soft-only", action="store_true",
                        help="set only the soft open-file limit, leaving the hard one (as many "
                        "desktops do: 1024 under a far higher hard limit)")
    parser.add_argument("--http2-connections", type=int, default=2000, metavar="K")
    parser.add_argument("--pipeline-connections", type=int, default=4, metavar="W")
    parser.add_argument("--idle-wait", type=float, default=45, metavar="S",
                        help="how long idle-5000 waits for the server to close them (45)")
    parser.add_argument("--json", metavar="FILE", help="write the raw numbers here")
    args = parser.parse_args()
    args.binary = str(Path(args.binary).resolve())  # the server runs in a directory of its own
    env = {}
    for setting in args.env:
        name, sep, value = setting.partition("=")
        if not sep or not name:
            parser.error(f"--env {setting!r}: expected NAME=value")
        if name == "LISTEN_ADDR":
            parser.error("LISTEN_ADDR is chosen by this script (a free port on 127.0.0.1)")
        env[name] = value
    args.env = env
    args.only = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [name for name in args.only if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return args


def main():
    args = parse_args()
    # A SIGTERM stops the run as a Ctrl-C does: the server is stopped and the table printed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # idle-5000 holds 5,000 sockets on this side too.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results, interrupted = [], False
    try:
        for name in args.only:
            print(f"{name} ...", file=sys.stderr, flush=True)
            results.append(run_scenario(name, args, hard))
            last = results[-1]
            outcome = last.get("error") or last["end"]
            print(f"{name}: {outcome} ({last['seconds']} s)", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: the table holds the scenarios that finished", file=sys.stderr)
    print(table(results), flush=True)
    if args.json:
        settings = {"binary": args.binary, "env": args.env, "argv": sys.argv}
        raw = {"settings": settings, "scenarios": results}
        Path(args.json).write_text(json.dumps(raw, indent=2, default=repr))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
