#!/usr/bin/env python3
"""Soak test: many clients against one llmpmd for a set time, with faults.

Tiny generated models (llmpm-gen-gguf), a local `docker-registry` to pull
from (through a proxy that cuts one pull mid-blob), and N client threads
doing create, pull, generate/chat (streamed, cancelled midway, bad options),
embed, copy, remove and prune. Meanwhile runners are SIGKILLed at random and
the daemon itself is killed and restarted a few times. Every request's
outcome is counted; a request that got neither an answer nor a clean error
is LOST, unless the daemon was killed under it. At the end: `llmpm verify`,
the store's names against what the clients believe they created, daemon
RSS / fds / threads over time, and runners left orphaned.

    bench/soak.py [--minutes 30] [--clients 8] [--bin-dir target/debug]

Exit status 0 when nothing was lost, verify is clean, the names match and no
runner is orphaned; 1 otherwise. Stdlib only.
"""
import argparse
import collections
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """llmpmd on a temp home; kill/restart keep the same home and port."""

    def __init__(self, bins, home, port, log):
        self.bins, self.home, self.port, self.log = bins, home, port, log
        self.proc = None
        self.down_since = None  # set while killed, cleared when serving again
        self.kill_windows = []  # (start, end) of each time it was down
        self.runners_seen = set()
        self.slow_stops = 0  # SIGTERMs that did not stop it within 30 s
        self.lock = threading.Lock()

    def env(self):
        return {
            "PATH": os.environ.get("PATH", ""),
            "LLMPM_HOME": str(self.home),
            "LLMPM_HOST": f"127.0.0.1:{self.port}",
            "LLMPM_CONFIG": str(self.home.parent / "empty.yaml"),
            "LLMPM_LOG": "info",
            "LLMPM_PULL_STALL_TIMEOUT": "5s",
        }

    def start(self):
        (self.home.parent / "empty.yaml").write_text("")
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([str(self.bins / "llmpmd")], env=self.env(),
                                     stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if request(self.port, "GET", "/", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("llmpmd did not start")

    def kill(self, sig=signal.SIGKILL):
        with self.lock:
            self.down_since = time.time()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # A clean stop that does not finish is a finding: say so, then kill.
            self.slow_stops += 1
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        self.start()
        with self.lock:
            self.kill_windows.append((self.down_since, time.time()))
            self.down_since = None

    def was_down(self, t0, t1):
        """Whether the daemon was killed at some point in [t0, t1]."""
        with self.lock:
            if self.down_since is not None and self.down_since <= t1:
                return True
            return any(a <= t1 and b >= t0 for a, b in self.kill_windows)

    def runner_pids_seen(self):
        return sorted(self.runners_seen)

    def runner_pids(self):
        pids = children(self.proc.pid)
        self.runners_seen.update(pids)
        return pids


def children(ppid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
            out.append(int(d))
    return out


def request(port, method, path, body=None, timeout=120, stream_cb=None):
    """(status, body bytes); with stream_cb, each NDJSON line as read (it may
    return False to hang up midway). Raises OSError/HTTPException on a cut."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if stream_cb is None or r.status != 200:
            return r.status, r.read()
        lines = []
        while True:
            line = r.readline()
            if not line:
                return r.status, b"".join(lines)
            lines.append(line)
            if line.strip() and stream_cb(json.loads(line)) is False:
                return r.status, None  # hung up on purpose
    finally:
        conn.close()


class CutProxy(threading.Thread):
    """TCP proxy to the registry; `cut_once()` arms it to close the next
    large blob response after 64 KiB (one pull cut mid-blob)."""

    def __init__(self, target_port):
        super().__init__(daemon=True)
        self.target = target_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.armed = False
        self.cuts = 0

    def cut_once(self):
        self.armed = True

    def run(self):
        while True:
            c, _ = self.sock.accept()
            threading.Thread(target=self.pipe, args=(c,), daemon=True).start()

    def pipe(self, c):
        try:
            u = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            c.close()
            return

        def up():
            try:
                while (b := c.recv(65536)):
                    u.sendall(b)
            except OSError:
                pass
            finally:
                try:
                    u.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        threading.Thread(target=up, daemon=True).start()
        sent = 0
        try:
            while (b := u.recv(65536)):
                c.sendall(b)
                sent += len(b)
                if self.armed and sent > 64 << 10:
                    self.armed = False
                    self.cuts += 1
                    break
        except OSError:
            pass
        finally:
            c.close()
            u.close()


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.dir = Path(tempfile.mkdtemp(prefix="llmpm-soak"))
        self.bins = self.dir / "bin"
        self.bins.mkdir()
        # A copy, so a rebuild during the run does not swap the binary.
        for b in ("llmpmd", "llmpm", "llmpm-gen-gguf"):
            shutil.copy2(Path(args.bin_dir) / b, self.bins / b)
        self.daemon = Daemon(self.bins, self.dir / "home", free_port(), self.dir / "llmpmd.log")
        self.outcomes = collections.Counter()
        self.lost = []
        self.samples_of = collections.defaultdict(list)  # (op, outcome) -> example details
        self.olock = threading.Lock()
        # name -> "yes" (created, must exist) / "maybe" (outcome unknown) / "no" (removed)
        self.beliefs = {}
        self.stop = threading.Event()
        self.samples = []
        self.events = []

    # -- setup -------------------------------------------------------------
    def gen(self, name, *flags):
        out = self.dir / f"{name}.gguf"
        subprocess.run([str(self.bins / "llmpm-gen-gguf"), "--out", str(out), *flags], check=True,
                       stdout=subprocess.DEVNULL)
        return out

    def upload(self, path):
        import hashlib
        data = path.read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        st, body = request(self.daemon.port, "POST", f"/api/blobs/{digest}", data)
        if st not in (200, 201):
            raise RuntimeError(f"upload {path}: {st} {body!r}")
        return digest

    def setup(self):
        reg_dir = self.dir / "registry"
        reg_dir.mkdir()
        rport = free_port()
        (reg_dir / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {reg_dir / 'storage'}\n"
            f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{rport}\n")
        reg_bin = shutil.which("docker-registry")
        if reg_bin is None:
            sys.exit("docker-registry not installed (apt-get install docker-registry)")
        self.registry = subprocess.Popen([reg_bin, "serve", str(reg_dir / "config.yml")],
                                         stdout=open(reg_dir / "log", "wb"), stderr=subprocess.STDOUT)
        self.proxy = CutProxy(rport)
        self.proxy.start()
        self.daemon.start()
        # Three weights files (runners are per file) and an encoder-free embed.
        self.ggufs = [self.gen(f"w{i}", "--seed", str(10 + i), "--chat-template") for i in range(3)]
        self.digests = [self.upload(p) for p in self.ggufs]
        for i, d in enumerate(self.digests):
            st, body = request(self.daemon.port, "POST", "/api/create",
                               {"model": f"base{i}", "files": {f"w{i}.gguf": d}, "stream": False,
                                "parameters": {"num_ctx": 512}})
            assert st == 200, body
            self.beliefs[f"base{i}:latest"] = "yes"
        # Publish to the registry: pulls go through the proxy.
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if request(rport, "GET", "/v2/")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        self.remote = []
        for i in range(3):
            src = f"127.0.0.1:{self.proxy.port}/soak/m{i}:latest"
            st, body = request(self.daemon.port, "POST", "/api/copy",
                               {"source": f"base{i}", "destination": src})
            assert st == 200, body
            st, body = request(self.daemon.port, "POST", "/api/push",
                               {"model": src, "insecure": True, "stream": False})
            assert st == 200 and b"error" not in body, body
            st, body = request(self.daemon.port, "DELETE", "/api/delete", {"model": src})
            assert st == 200, body
            self.remote.append(src)
        # A model whose weights are nowhere in the store: pulled once, cut
        # mid-blob by the proxy (chaos does it halfway through the run).
        big = self.gen("cut", "--seed", "99", "--embd", "256", "--ff", "512")
        d = self.upload(big)
        self.cut_model = f"127.0.0.1:{self.proxy.port}/soak/cut:latest"
        st, body = request(self.daemon.port, "POST", "/api/create",
                           {"model": self.cut_model, "files": {"cut.gguf": d}, "stream": False})
        assert st == 200, body
        st, body = request(self.daemon.port, "POST", "/api/push",
                           {"model": self.cut_model, "insecure": True, "stream": False})
        assert st == 200 and b"error" not in body, body
        request(self.daemon.port, "DELETE", "/api/delete", {"model": self.cut_model})
        st, body = request(self.daemon.port, "POST", "/api/prune")
        assert st == 200, body

    # -- clients -----------------------------------------------------------
    def record(self, op, outcome, detail=""):
        with self.olock:
            self.outcomes[(op, outcome)] += 1
            if outcome == "LOST":
                self.lost.append((time.time(), op, detail))
            elif outcome != "ok" and len(self.samples_of[(op, outcome)]) < 2:
                self.samples_of[(op, outcome)].append(detail)

    def call(self, op, method, path, body=None, stream_cb=None, expect=(200,)):
        """Runs one request and records its outcome; returns (status, body) or None."""
        t0 = time.time()
        try:
            st, data = request(self.daemon.port, method, path, body, stream_cb=stream_cb)
        except (OSError, http.client.HTTPException) as e:
            if self.daemon.was_down(t0, time.time()):
                self.record(op, "daemon-killed")
                time.sleep(0.5)  # do not spin while it restarts
            else:
                self.record(op, "LOST", f"{path}: {e!r}")
            return None
        if data is None:
            self.record(op, "cancelled")
            return st, data
        outcome = "ok" if st in expect else None
        text = data.decode(errors="replace")
        if outcome == "ok" and st >= 400:
            outcome = f"refused-{st}-as-expected"
        elif outcome is None:
            try:
                err = json.loads(text).get("error")
            except ValueError:
                err = None
            outcome = f"error-{st}" if err else "LOST"
        if outcome == "ok":
            # A streamed body: each line JSON; an error line is a clean error.
            last = text.strip().splitlines()[-1] if text.strip() else "{}"
            try:
                lastv = json.loads(last)
                if "error" in lastv:
                    outcome = "error-in-stream"
                elif stream_cb is not None and not lastv.get("done", True):
                    outcome = "daemon-killed" if self.daemon.was_down(t0, time.time()) else "LOST"
            except ValueError:
                outcome = "daemon-killed" if self.daemon.was_down(t0, time.time()) else "LOST"
        self.record(op, outcome, f"{path}: {st} {text[-300:]}")
        return st, data

    def client(self, cid):
        rng = random.Random(self.args.seed * 1000 + cid)
        mine = []
        n = 0
        while not self.stop.is_set():
            n += 1
            op = rng.choices(
                ["generate", "chat", "cancel", "badopt", "embed", "create", "pull", "copy", "rm", "prune", "tags"],
                [20, 20, 8, 5, 8, 8, 5, 6, 6, 2, 4])[0]
            if op in ("create", "copy") and len(mine) >= self.args.max_models:
                # A steady store, so growth in the daemon's memory is a leak
                # rather than a bigger index.
                op = "rm"
            model = rng.choice(["base0", "base1", "base2"] + mine)
            if op == "generate":
                self.call(op, "POST", "/api/generate",
                          {"model": model, "prompt": f"soak {n}", "stream": rng.random() < 0.5,
                           "options": {"num_predict": rng.randint(1, 24), "seed": n}},
                          stream_cb=lambda v: True)
            elif op == "chat":
                self.call(op, "POST", "/api/chat",
                          {"model": model, "messages": [{"role": "user", "content": f"hi {n}"}],
                           "options": {"num_predict": rng.randint(1, 16)},
                           "format": "json" if rng.random() < 0.2 else ""},
                          stream_cb=lambda v: True)
            elif op == "cancel":
                k = rng.randint(1, 4)
                seen = [0]

                def hang_up(v, k=k, seen=seen):
                    seen[0] += 1
                    return seen[0] < k
                self.call(op, "POST", "/api/generate",
                          {"model": model, "prompt": "a long story", "options": {"num_predict": 200}},
                          stream_cb=hang_up)
            elif op == "badopt":
                self.call(op, "POST", "/api/generate",
                          {"model": model, "prompt": "x", "options": {"temperature": "hot"}},
                          expect=(400,))
            elif op == "embed":
                self.call(op, "POST", "/api/embed", {"model": model, "input": [f"e{n}", "two"]})
            elif op == "create":
                name = f"c{cid}-m{n}:latest"
                self.beliefs[name] = "maybe"
                body = {"model": name, "files": {"w.gguf": rng.choice(self.digests)},
                        "system": f"client {cid} model {n}", "stream": False,
                        "parameters": {"num_ctx": 512}}
                if self.args.mixed_num_ctx and rng.random() < 0.3:
                    # Two names of one file with different num_ctx: their
                    # requests make the runner reload between them.
                    del body["parameters"]
                r = self.call(op, "POST", "/api/create", body)
                if r and r[0] == 200 and b"success" in r[1]:
                    self.beliefs[name] = "yes"
                    mine.append(name)
                elif r and r[0] != 200:
                    self.beliefs[name] = "no"
            elif op == "pull":
                src = rng.choice(self.remote)
                r = self.call(op, "POST", "/api/pull", {"model": src, "insecure": True, "stream": False})
                if r and r[0] == 200 and b"success" in r[1]:
                    self.beliefs[src] = "yes"
                elif src not in self.beliefs:
                    self.beliefs[src] = "maybe"
            elif op == "copy" and mine:
                src = rng.choice(mine)
                dst = f"c{cid}-copy{n}:latest"
                self.beliefs[dst] = "maybe"
                r = self.call(op, "POST", "/api/copy", {"source": src, "destination": dst},
                              expect=(200, 404))
                if r and r[0] == 200:
                    self.beliefs[dst] = "yes"
                    mine.append(dst)
                elif r:
                    self.beliefs[dst] = "no"
            elif op == "rm" and mine:
                name = mine.pop(rng.randrange(len(mine)))
                self.beliefs[name] = "maybe"
                r = self.call(op, "DELETE", "/api/delete", {"model": name}, expect=(200,))
                if r and r[0] == 200:
                    self.beliefs[name] = "no"
            elif op == "prune":
                self.call(op, "POST", "/api/prune")
            else:
                self.call("tags", "GET", "/api/tags")

    # -- faults and sampling -----------------------------------------------
    def chaos(self):
        end = self.t_end
        restarts = self.args.daemon_kills  # 0: one daemon for the whole run (its RSS over time)
        kill_at = sorted(self.t0 + (end - self.t0) * (i + 1) / (restarts + 1) for i in range(restarts))
        cut_at = self.t0 + (end - self.t0) * 0.45
        while not self.stop.wait(self.rng.uniform(8, 25)):
            if cut_at and time.time() >= cut_at:
                cut_at = None
                self.proxy.cut_once()
                self.events.append((time.time(), "pull cut mid-blob"))
                r = self.call("pull-cut", "POST", "/api/pull",
                              {"model": self.cut_model, "insecure": True, "stream": False})
                if r and r[0] == 200 and b"success" in r[1]:
                    self.beliefs[self.cut_model] = "yes"
                else:
                    self.beliefs[self.cut_model] = "maybe"
                continue
            if kill_at and time.time() >= kill_at[0]:
                kill_at.pop(0)
                sig = signal.SIGKILL if len(kill_at) % 2 == 0 else signal.SIGTERM
                self.daemon.runner_pids()  # remembered for the orphan check
                self.events.append((time.time(), f"daemon {sig.name}"))
                self.daemon.kill(sig)
                time.sleep(1)
                self.daemon.restart()
                continue
            pids = self.daemon.runner_pids()
            if pids:
                pid = self.rng.choice(pids)
                self.events.append((time.time(), "runner SIGKILL"))
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def sampler(self):
        while not self.stop.wait(5):
            p = self.daemon.proc
            try:
                status = open(f"/proc/{p.pid}/status").read()
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                rss = int(fields["VmRSS"].split()[0])
                threads = int(fields["Threads"])
                fds = len(os.listdir(f"/proc/{p.pid}/fd"))
            except (OSError, KeyError, ValueError):
                continue
            self.samples.append((time.time() - self.t0, p.pid, rss, fds, threads,
                                 len(self.daemon.runner_pids())))

    # -- the run -----------------------------------------------------------
    def run(self):
        self.setup()
        self.t0 = time.time()
        self.t_end = self.t0 + self.args.minutes * 60
        threads = [threading.Thread(target=self.client, args=(i,), daemon=True)
                   for i in range(self.args.clients)]
        threads += [threading.Thread(target=self.chaos, daemon=True),
                    threading.Thread(target=self.sampler, daemon=True)]
        for t in threads:
            t.start()
        while time.time() < self.t_end:
            time.sleep(1)
        self.stop.set()
        for t in threads:
            t.join(timeout=300)
        return self.report()

    def report(self):
        ok = True
        print(f"== soak: {self.args.minutes} min, {self.args.clients} clients, seed {self.args.seed}, "
              f"mixed num_ctx {self.args.mixed_num_ctx}")
        total = sum(self.outcomes.values())
        by_outcome = collections.Counter()
        for (op, outcome), n in self.outcomes.items():
            by_outcome[outcome] += n
        print(f"requests: {total}; by outcome: {dict(sorted(by_outcome.items()))}")
        for op in sorted({op for op, _ in self.outcomes}):
            row = {o: n for (p, o), n in self.outcomes.items() if p == op}
            print(f"  {op:9} {dict(sorted(row.items()))}")
        for (op, outcome), details in sorted(self.samples_of.items()):
            for d in details:
                print(f"    e.g. {op} {outcome}: {d[-240:]}")
        if self.lost:
            ok = False
            print(f"LOST: {len(self.lost)}")
            for t, op, d in self.lost[:20]:
                print(f"  {t - self.t0:7.1f}s {op}: {d}")
        print("faults:", dict(collections.Counter(e for _, e in self.events)))
        print(f"pull cut mid-blob: {self.proxy.cuts}; SIGTERMs not done in 30 s: {self.daemon.slow_stops}")
        ok &= self.daemon.slow_stops == 0

        # Verify through the CLI, then the store's names against the beliefs.
        env = dict(self.daemon.env(), LLMPM_NO_AUTOSTART="1", NO_COLOR="1")
        v = subprocess.run([str(self.bins / "llmpm"), "verify"], env=env, capture_output=True, text=True)
        print(f"llmpm verify: exit {v.returncode}: {v.stdout.strip()[-400:]} {v.stderr.strip()[-400:]}")
        ok &= v.returncode == 0
        st, body = request(self.daemon.port, "GET", "/api/tags")
        stored = {m["name"] for m in json.loads(body)["models"]}
        must = {n for n, b in self.beliefs.items() if b == "yes"}
        may = {n for n, b in self.beliefs.items() if b == "maybe"}
        missing = must - stored
        unexpected = stored - must - may
        print(f"store: {len(stored)} models; clients believe {len(must)} created "
              f"(+{len(may)} unknown outcome); missing {sorted(missing)}; unexpected {sorted(unexpected)}")
        ok &= not missing and not unexpected
        for name in sorted(stored)[:1000]:
            st, _ = request(self.daemon.port, "POST", "/api/show", {"model": name})
            if st != 200:
                print(f"  show {name}: {st}")
                ok = False

        # Growth: samples of the last daemon incarnation, after a warm-up.
        print("samples (t s, pid, RSS KiB, fds, threads, runners):")
        step = max(1, len(self.samples) // 12)
        for s in self.samples[::step]:
            print(f"  {s[0]:7.0f} {s[1]:7} {s[2]:8} {s[3]:5} {s[4]:4} {s[5]:3}")
        last_pid = self.samples[-1][1] if self.samples else None
        inc = [s for s in self.samples if s[1] == last_pid]
        if len(inc) > 8:
            warm = inc[len(inc) // 4:]
            half = len(warm) // 2
            for i, what in ((2, "RSS KiB"), (3, "fds"), (4, "threads")):
                a = max(s[i] for s in warm[:half])
                b = max(s[i] for s in warm[half:])
                flat = b <= a * 1.15 + (2 if i > 2 else 0)
                print(f"  {what}: max {a} in the first half after warm-up, {b} in the second"
                      f" ({'flat' if flat else 'GROWING'})")
                ok &= flat

        # Orphans: stop the daemon cleanly; no runner it ever had may live on.
        self.daemon.kill(signal.SIGTERM)
        time.sleep(3)
        alive = [p for p in self.daemon.runner_pids_seen() if Path(f"/proc/{p}").exists()
                 and b"runner" in Path(f"/proc/{p}/cmdline").read_bytes()]
        print(f"runners seen: {len(self.daemon.runners_seen)}; orphaned: {alive}")
        ok &= not alive
        self.registry.terminate()
        print("RESULT:", "PASS" if ok else "FAIL", f"(logs in {self.dir})")
        return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--daemon-kills", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-models", type=int, default=20,
                    help="models one client keeps before it only removes (a steady store)")
    ap.add_argument("--no-mixed-num-ctx", dest="mixed_num_ctx", action="store_false",
                    help="give every model the same num_ctx (avoids the reload livelock of "
                         "daemons before the fix in sched/queue.rs)")
    ap.add_argument("--bin-dir", default=str(ROOT / "target" / "debug"))
    sys.exit(Soak(ap.parse_args()).run())


if __name__ == "__main__":
    main()
