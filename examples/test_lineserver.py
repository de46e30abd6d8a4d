#!/usr/bin/env python3
"""examples/test_lineserver.py — runs examples/lineserver as its clients
would, and checks every reply against python3's own zlib.

    test_lineserver.py GUARD LINESERVER

GUARD is tests/no_leftovers (the server runs under it, so that a process
or a runtime directory it leaves behind fails the test); test_examples.sh
runs this as its lineserver case.  Two runs:

  1. 20 clients x 200 requests over loopback, at once, in three manners
     (all requests sent at once in pieces of random size, one at a time,
     at most 8 outstanding), "\\r\\n" endings and a last line without "\\n";
     besides them clients that leave early (one by a reset) and one that
     sends a line over the limit.  Three workers with a capacity of 4
     items each, so that puts say MPX_EAGAIN and the server stops reading;
     the worker that takes request 1000 kills itself with SIGKILL and is
     replaced (retries 2).  Every client must get exactly its replies, in
     the order it asked, each equal to the reference, then the end of the
     connection; SIGTERM to the whole process group then ends the server:
     status 0, one replacement only (the workers ignore it), every request
     taken answered or its client gone.
  2. A request that kills its worker three times (retries 2): its client
     gets "ERROR request failed: ..." in its place, every other reply is
     right, and the server goes on serving.
  3. SIGINT while 6 clients have requests in flight: each gets a prefix of
     its replies, each right, then the end; the server answers every
     request it took (none lost on the way out) and exits 0.

Nothing here waits for a time to pass: the timeouts only keep a broken
server from hanging the test.
"""
import os
import random
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import zlib

HANG = 60  # seconds without any progress before the test gives up
MAX_LINE = 4096


class Failure(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def ok(msg):
    print(f"  ok: {msg}")


# ---- the files served, and what the server must say of each request ---------


def make_tree(root, rng):
    """Files of every kind of size and content under root/served; returns the
    request paths whose replies are file digests."""
    served = os.path.join(root, "served")
    os.makedirs(os.path.join(served, "dir", "sub"))
    sizes = [0, 1, 2, 100, 4095, 4096, 4097, 65535, 65536, 65537, 200000]
    sizes += [rng.randrange(0, 65536) for _ in range(25)]
    words = b"alpha beta gamma delta epsilon zeta eta theta iota kappa\n".split(b" ")
    names = []
    for i, size in enumerate(sizes):
        kind = i % 3
        if kind == 0:  # incompressible
            data = rng.randbytes(size)
        elif kind == 1:  # text
            data = b" ".join(rng.choice(words) for _ in range(size // 5 + 1))[:size]
        else:  # runs
            data = bytes(rng.choice(b"ab\0") for _ in range(size // 64 + 1)) * 64
            data = data[:size]
        name = ["f%02d.bin", "dir/t%02d.txt", "dir/sub/r%02d"][kind] % i
        with open(os.path.join(served, name), "wb") as f:
            f.write(data)
        names.append(name)
    for name in ["with space.txt", "ünïcode.txt", "back\\slash"]:
        with open(os.path.join(served, name), "wb") as f:
            f.write(name.encode() * 100)
        names.append(name)
    with open(os.path.join(root, "outside.txt"), "wb") as f:
        f.write(b"not to be served\n")
    os.symlink("../outside.txt", os.path.join(served, "link-out"))
    os.symlink(os.path.join(root, "outside.txt"), os.path.join(served, "link-abs"))
    os.symlink("f00.bin", os.path.join(served, "link-in"))
    os.symlink("dir", os.path.join(served, "dirlink"))
    os.mkfifo(os.path.join(served, "fifo"))
    return served, names


def digest(path):
    with open(path, "rb") as f:
        data = f.read()
    z = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    packed = len(z.compress(data)) + len(z.flush())
    return f"{zlib.crc32(data):08x} {len(data)} {packed}"


def expectations(served, names):
    """Reply line (bytes, without "\\n") for each request path."""
    expect = {n: f"{digest(os.path.join(served, n))} {n}" for n in names}
    # Said as asked: the path in the reply is the request's.
    expect["./dir//t01.txt"] = f"{digest(os.path.join(served, 'dir/t01.txt'))} ./dir//t01.txt"
    refusals = {
        "missing.txt": "No such file or directory",
        "dir/nothing/here": "No such file or directory",
        "": "No such file or directory",
        "dir": "not a regular file",
        "dir/": "No such file or directory",
        "fifo": "not a regular file",
        "f00.bin/x": "Not a directory",
        "../outside.txt": "outside the served directory",
        "dir/../f00.bin": "outside the served directory",
        "dir/../../outside.txt": "outside the served directory",
        "/etc/hostname": "outside the served directory",
        "link-out": "a symbolic link (not followed)",
        "link-abs": "a symbolic link (not followed)",
        "link-in": "a symbolic link (not followed)",
        "dirlink/t01.txt": "a symbolic link (not followed)",
    }
    for n, why in refusals.items():
        expect[n] = f"ERROR {n}: {why}"
    return {k.encode(): v.encode() for k, v in expect.items()}


# ---- clients ------------------------------------------------------------------


class Client:
    """One connection.  window: requests outstanding at most (None: all at
    once); leave_after: close after that many replies (reset: with an RST);
    its requests are sent in pieces of random size."""

    def __init__(self, name, port, requests, expect, rng, window=None, crlf=False,
                 unterminated=False, leave_after=None, reset=False, replies=None):
        self.name = name
        self.rng = rng
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.requests = requests
        self.expected = replies if replies is not None else [expect[r] for r in requests]
        self.window, self.crlf, self.unterminated = window, crlf, unterminated
        self.leave_after, self.reset = leave_after, reset
        self.queued = 0
        self.out = bytearray()
        self.inbuf = bytearray()
        self.replies = []
        self.eof = self.shut = self.closed = False
        self.reset_seen = False

    def fill(self):
        while self.queued < len(self.requests) and (
                self.window is None or self.queued - len(self.replies) < self.window):
            line = self.requests[self.queued]
            self.queued += 1
            last = self.queued == len(self.requests)
            self.out += line + (b"" if last and self.unterminated else
                                b"\r\n" if self.crlf else b"\n")

    def events(self):
        if self.closed:
            return 0
        self.fill()
        self.shut_if_sent()
        ev = 0 if self.eof else selectors.EVENT_READ
        if self.out and not self.shut:
            ev |= selectors.EVENT_WRITE
        return ev

    def on_write(self):
        piece = self.rng.randint(1, len(self.out))
        try:
            n = self.sock.send(self.out[:piece])
        except BlockingIOError:
            return
        except (BrokenPipeError, ConnectionResetError):
            self.out.clear()  # the server has ended the connection
            self.shut = True
            return
        del self.out[:n]
        self.shut_if_sent()

    def shut_if_sent(self):
        if not self.out and self.queued == len(self.requests) and not self.shut:
            self.sock.shutdown(socket.SHUT_WR)
            self.shut = True

    def on_read(self):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionResetError:
            self.reset_seen = True
            data = b""
        if not data:
            self.eof = True
            if self.inbuf:
                self.replies.append(bytes(self.inbuf))  # a line without "\n": wrong
            return
        self.inbuf += data
        *lines, rest = self.inbuf.split(b"\n")
        self.replies += lines
        self.inbuf = bytearray(rest)

    def wants_to_leave(self):
        return (not self.closed and self.leave_after is not None and not self.out
                and self.queued == len(self.requests) and len(self.replies) >= self.leave_after)

    def leave(self):
        if self.reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        self.sock.close()
        self.closed = True

    def done(self):
        return self.closed or self.eof

    def finish(self):
        if not self.closed:
            self.sock.close()
            self.closed = True


def run_clients(clients, on_progress=None):
    """Serve every client until each has seen its end; on_progress(clients)
    after each read (to send a signal at the right moment)."""
    sel = selectors.DefaultSelector()
    registered = {}
    while True:
        pending = [c for c in clients if not c.done()]
        if not pending:
            break
        for c in clients:
            ev = 0 if c.done() else c.events()
            old = registered.get(c)
            if ev and old is None:
                sel.register(c.sock, ev, c)
            elif ev and old != ev:
                sel.modify(c.sock, ev, c)
            elif not ev and old is not None:
                sel.unregister(c.sock)
            if ev:
                registered[c] = ev
            else:
                registered.pop(c, None)
        ready = sel.select(HANG)
        if not ready:
            fail("no progress for %d s; waiting: %s" % (HANG, ", ".join(
                f"{c.name} ({len(c.replies)} of {len(c.expected)} replies, "
                f"{c.queued} asked)" for c in pending)))
        for key, mask in ready:
            c = key.data
            if mask & selectors.EVENT_WRITE:
                c.on_write()
            if mask & selectors.EVENT_READ:
                c.on_read()
                if on_progress:
                    on_progress(clients)
            if c.wants_to_leave():
                sel.unregister(c.sock)  # before the close frees its descriptor
                registered.pop(c)
                c.leave()
    sel.close()
    for c in clients:
        c.finish()


# ---- the server -----------------------------------------------------------------


servers = []  # those running, for the clean-up of a failed test


class Server:
    def __init__(self, guard, binary, args):
        self.cmd = [guard, binary] + args
        print("running:", " ".join(self.cmd), flush=True)
        # A session of its own: a signal may go to the whole group.
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, start_new_session=True)
        servers.append(self)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(HANG):
            fail(f"the server said no port within {HANG} s")
        sel.close()
        line = self.proc.stdout.readline().decode()
        m = re.fullmatch(r"port (\d+)\n", line)
        if not m:
            fail(f"the server's first line is {line!r}, not 'port N'")
        self.port = int(m.group(1))

    def kill(self):
        """End the server however it is, and let the guard sweep what it
        left: the server is killed, not the guard."""
        if self.proc.poll() is None:
            try:
                with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                    for pid in f.read().split():
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                self.proc.kill()
            try:
                self.proc.wait(timeout=HANG)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in servers:
            servers.remove(self)

    def signal(self, sig, group=False):
        """To the guard, which passes it on to the server; or to every
        process of the group, as systemd's stop and timeout(1) do: the
        server then has it twice, and the workers once."""
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)

    def finish(self):
        """Wait for the end; returns the summary's figures."""
        try:
            out, _ = self.proc.communicate(timeout=HANG)
        except subprocess.TimeoutExpired:
            fail(f"the server did not end within {HANG} s of the signal")
        servers.remove(self)
        rc = self.proc.returncode
        if rc == 125:
            fail("the server left a process or a file behind (see above)")
        if rc != 0:
            fail(f"the server exited with status {rc}")
        text = out.decode()
        m = re.fullmatch(r"connections: (\d+)  requests: (\d+)  replies: (\d+)  orphans: (\d+)"
                         r"  duplicates: (\d+)  pauses: (\d+)  restarts: (\d+)\n", text)
        if not m:
            fail(f"the server's summary is {text!r}")
        keys = ["connections", "requests", "replies", "orphans", "duplicates", "pauses",
                "restarts"]
        ok(f"exit status 0, nothing left behind; {text.strip()}")
        return dict(zip(keys, map(int, m.groups())))


def check_all_replies(c):
    if c.reset_seen:
        fail(f"{c.name}: the server reset the connection")
    for i, (got, want) in enumerate(zip(c.replies, c.expected)):
        if got != want:
            fail(f"{c.name}: reply {i} is {got!r}, expected {want!r} (for {c.requests[i]!r})")
    if len(c.replies) != len(c.expected):
        fail(f"{c.name}: {len(c.replies)} replies for {len(c.expected)} requests"
             + (f", the extra one {c.replies[len(c.expected)]!r}"
                if len(c.replies) > len(c.expected) else ""))
    if not c.eof:
        fail(f"{c.name}: the server did not end the connection")


def check_prefix(c):
    if c.reset_seen:
        fail(f"{c.name}: the server reset the connection")
    if len(c.replies) > len(c.expected):
        fail(f"{c.name}: {len(c.replies)} replies for {len(c.expected)} requests")
    for i, (got, want) in enumerate(zip(c.replies, c.expected)):
        if got != want:
            fail(f"{c.name}: reply {i} is {got!r}, expected {want!r} (for {c.requests[i]!r})")


# ---- the two runs ---------------------------------------------------------------------


def many_clients(guard, binary, served, expect, rng):
    good = [k for k, v in expect.items() if not v.startswith(b"ERROR")]
    bad = [k for k, v in expect.items() if v.startswith(b"ERROR")]

    def requests(n):
        return [rng.choice(bad) if rng.random() < 0.1 else rng.choice(good) for _ in range(n)]

    kill_at = 1000
    srv = Server(guard, binary, ["-j", "3", "-c", "4", "--kill-at", str(kill_at), served])
    clients = []
    for i in range(20):
        window = [None, 1, 8][i % 3]
        asked = requests(200)
        unterminated = i in (5, 7)
        if unterminated and asked[-1] == b"":
            asked[-1] = good[0]  # an empty last line without "\n" is no line at all
        clients.append(Client(f"client {i}", srv.port, asked, expect, rng,
                              window=window, crlf=i == 4, unterminated=unterminated))
    # Leaving early, with their requests still in the graph.
    leavers = [Client(f"leaver {i}", srv.port, requests(100), expect, rng, leave_after=n,
                      reset=i == 3) for i, n in enumerate([0, 1, 5, 20])]
    long_line = b"x" * (MAX_LINE + 100)
    too_long = Client("long line", srv.port, [good[0], good[1], long_line, good[2]], expect,
                      rng, replies=[expect[good[0]], expect[good[1]],
                                    b"ERROR request line longer than 4096 bytes"])
    everyone = clients + leavers + [too_long]
    run_clients(everyone)
    for c in clients + [too_long]:
        check_all_replies(c)
    ok(f"{len(clients)} clients x 200 requests: each got its 200 replies in order, "
       f"equal to zlib's, then the end (three manners, \\r\\n, unterminated last lines)")
    ok("a line over 4096 bytes: the replies before it, the error, then the end")

    srv.signal(signal.SIGTERM, group=True)
    f = srv.finish()
    if f["connections"] != len(everyone):
        fail(f"the server counted {f['connections']} connections, there were {len(everyone)}")
    if f["restarts"] != 1:
        fail(f"{f['restarts']} workers replaced, not 1 (--kill-at {kill_at})")
    if f["requests"] < 20 * 200 + 2:
        fail(f"the server took {f['requests']} requests, fewer than were answered")
    if f["requests"] != f["replies"] + f["orphans"]:
        fail(f"{f['requests']} requests taken, {f['replies']} answered, "
             f"{f['orphans']} for clients gone: some were lost")
    if f["pauses"] == 0:
        fail("no put said MPX_EAGAIN: the backpressure path was not taken")
    ok(f"one worker killed and replaced; every request answered or its client gone; "
       f"{f['pauses']} pauses for room; {f['duplicates']} results seen twice, dropped")


def poisoned(guard, binary, served, expect, rng):
    good = [k for k, v in expect.items() if not v.startswith(b"ERROR")]
    srv = Server(guard, binary, ["-j", "2", "--kill-at", "5", "--kill-times", "3", served])
    # One at a time: request 5 of this client is request 5 of the server.
    first = Client("client 0", srv.port, [rng.choice(good) for _ in range(20)], expect, rng,
                   window=1)
    run_clients([first])
    got = first.replies[5] if len(first.replies) > 5 else b""
    if not (got.startswith(b"ERROR request failed: ") and b"signal 9" in got):
        fail(f"the reply to the request that killed three workers is {got!r}")
    first.expected[5] = got
    check_all_replies(first)
    second = Client("client 1", srv.port, [rng.choice(good) for _ in range(50)], expect, rng)
    run_clients([second])
    check_all_replies(second)
    srv.signal(signal.SIGTERM)
    f = srv.finish()
    if f["restarts"] != 3 or f["requests"] != 70 or f["replies"] != 70:
        fail(f"expected 3 replacements and 70 requests answered: {f}")
    ok(f"a request that killed three workers: {got.decode()!r}; the other 19 right, "
       "and the next client served")


def interrupted(guard, binary, served, expect, rng):
    good = [k for k, v in expect.items() if not v.startswith(b"ERROR")]
    big = sorted(good, key=lambda k: -int(expect[k].split()[1]))[:6]
    srv = Server(guard, binary, ["-j", "2", served])
    clients = [Client(f"client {i}", srv.port, [rng.choice(big) for _ in range(300)], expect,
                      rng, window=[None, 4, 16][i % 3]) for i in range(6)]
    sent = []

    def maybe_signal(cs):
        if not sent and sum(len(c.replies) for c in cs) >= 30:
            srv.signal(signal.SIGINT)
            sent.append(True)

    run_clients(clients, maybe_signal)
    if not sent:
        fail("the clients finished before the signal could be sent")
    got = 0
    for c in clients:
        check_prefix(c)
        if not c.eof:
            fail(f"{c.name}: the server did not end the connection")
        got += len(c.replies)
    f = srv.finish()
    if f["replies"] != f["requests"] or f["orphans"] != 0:
        fail(f"{f['requests']} requests taken, {f['replies']} answered: "
             "the drain lost some")
    if got != f["replies"]:
        fail(f"the clients read {got} replies, the server made {f['replies']}")
    if got == 6 * 300:
        fail("every request was answered: the signal came too late to test the drain")
    ok(f"SIGINT mid-run: {got} of {6 * 300} requests answered, each client a prefix of "
       "its replies, all right, then the end")


def main():
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    guard, binary = sys.argv[1], sys.argv[2]
    seed = int(os.environ.get("LINESERVER_SEED", random.randrange(1 << 30)))
    print(f"seed {seed} (LINESERVER_SEED={seed} repeats the requests)")
    rng = random.Random(seed)
    # A time limit's SIGTERM ends the test through the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    root = tempfile.mkdtemp(prefix="test_lineserver.")
    try:
        served, names = make_tree(root, rng)
        expect = expectations(served, names)
        many_clients(guard, binary, served, expect, rng)
        poisoned(guard, binary, served, expect, rng)
        interrupted(guard, binary, served, expect, rng)
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        for srv in list(servers):
            srv.kill()
        shutil.rmtree(root)
    print("lineserver: all passed")


if __name__ == "__main__":
    main()
