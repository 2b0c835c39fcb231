"""Helpers for the guest scripts that run inside the test VM: facts, daemons as subprocesses, users, UInput."""

import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time

from evdev import InputDevice, ecodes, list_devices

BIN = os.path.dirname(sys.executable)  # the venv's console scripts sit beside its python
OCTOPANEL = os.path.join(BIN, "octopanel")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
USER = "octopanel"
T0 = time.monotonic()
# Facts the guest observed, printed as JSON on stdout at the end; the host-side tests judge them.
FACTS = {}


def log(*words):
    print(f"[{time.monotonic() - T0:7.3f}]", *words, file=sys.stderr, flush=True)


def fact(name, value):
    FACTS[name] = value
    log(f"fact {name} = {value!r}")
    return value


def finish():
    fact("guest_wall_s", round(time.monotonic() - T0, 1))
    print(json.dumps(FACTS), flush=True)


def guarded(main):
    """Run main(); an exception becomes the fact 'guest_error' so the host reports it instead of bad JSON."""
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - every failure must reach the host as a fact
        import traceback

        traceback.print_exc()
        fact("guest_error", f"{type(exc).__name__}: {exc}")
    finish()


def add_service_user():
    """The service's user: system user octopanel, primary group octopanel, supplementary group input."""
    subprocess.run(["groupadd", "--system", "-f", USER], check=True)
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--gid",
                USER,
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ],
            check=True,
        )
    let_service_user_through()


def let_service_user_through():
    """Give others search permission (x only) on each directory above the checkout and the venv's python.

    A checkout cloned into a 0700 directory (`git clone . "$(mktemp -d)/c"`) hides the venv from the service
    user: every daemon fails with "Permission denied". Inside the VM each top-level directory is an overlay
    whose writes are discarded, so this changes nothing on the host."""
    for start in (REPO, os.path.realpath(sys.executable)):
        path = os.path.dirname(start) if os.path.isfile(start) else start
        while True:
            mode = os.stat(path).st_mode
            if not mode & 0o001:
                log(f"chmod o+x {path} (was {mode & 0o7777:04o})")
                os.chmod(path, mode & 0o7777 | 0o001)
            if path == "/":
                break
            path = os.path.dirname(path)


def as_user(argv, groups="input"):
    """argv as the service runs it: User=octopanel Group=octopanel SupplementaryGroups=groups (None: none)."""
    extra = ["--groups", groups] if groups else ["--clear-groups"]
    return ["setpriv", "--reuid", USER, "--regid", USER, *extra, "--", *argv]


def udevadm(*args):
    # The guest's command runs in a chroot, where udevadm ignores requests unless told not to care.
    subprocess.run(["udevadm", *args], check=True, env=dict(os.environ, SYSTEMD_IGNORE_CHROOT="1"))


def env():
    return dict(os.environ, PYTHONUNBUFFERED="1", OCTOPANEL_CONFIG="/nonexistent.yaml", HOME="/tmp")


class Proc:
    """A subprocess whose merged stdout/stderr lines are collected by a thread, with waiting on a pattern."""

    def __init__(self, argv, name, extra_env=None):
        """`extra_env`: for secrets (the API key), which the logged command line must not carry."""
        self.name, self.lines, self.cond = name, [], threading.Condition()
        log(f"$ {' '.join(argv)}")
        self.p = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(env(), **(extra_env or {})),
            cwd=REPO,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.p.stdout:
            with self.cond:
                self.lines.append(raw.rstrip("\n"))
                self.cond.notify_all()
            log(f"{self.name} | {raw.rstrip()}")

    def mark(self):
        with self.cond:
            return len(self.lines)

    def since(self, mark):
        with self.cond:
            return list(self.lines[mark:])

    def wait_for(self, pattern, start=0, timeout=20.0):
        """The first line from `start` on that matches, or None after timeout seconds."""
        rx, end = re.compile(pattern), time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if rx.search(line):
                        return line
                if time.monotonic() > end:
                    return None
                self.cond.wait(0.05)

    def count(self, pattern, start=0, end=None):
        rx = re.compile(pattern)
        with self.cond:
            return sum(1 for line in self.lines[start:end] if rx.search(line))

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Signal it and return its exit status (killed, and None, if it does not exit in time)."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None


def daemon(keymap, name, user=True, extra=()):
    """`octopanel run --dry-run` on keymap, as the service user unless user is False."""
    argv = [OCTOPANEL, "run", "--dry-run", "--no-control", "--keymap", keymap, *extra]
    return Proc(as_user(argv) if user else argv, name)


def find_node(name, timeout=15.0):
    """The InputDevice whose name is `name`, once its node exists (None after timeout)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for path in list_devices():
            try:
                dev = InputDevice(path)
            except OSError:
                continue
            if dev.name == name:
                return dev
            dev.close()
        time.sleep(0.05)
    return None


def drain(dev, timeout=0.5):
    """EV_KEY events [(code, value)] that arrive on dev within timeout (a grabbed-away reader gets none)."""
    out, end = [], time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0 or not select.select([dev.fd], [], [], left)[0]:
            return out
        try:
            out += [(ev.code, ev.value) for ev in dev.read() if ev.type == 1]
        except BlockingIOError:
            pass


def tap(ui, code, hold_s=0.05):
    ui.write(1, code, 1)
    ui.syn()
    time.sleep(hold_s)
    ui.write(1, code, 0)
    ui.syn()


def wait_settled(proc, quiet_s=0.6, timeout=10.0):
    """Wait until proc printed nothing for quiet_s (its queued work is done)."""
    end, n, last = time.monotonic() + timeout, proc.mark(), time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.1)
        if proc.mark() != n:
            n, last = proc.mark(), time.monotonic()
        elif time.monotonic() - last >= quiet_s:
            return


# A request as the dry run prints it: `→ POST /api/printer/printhead {"command": "jog", "y": 1}  (dry run…)`.
REQUEST = re.compile(r"→ (GET|POST|PUT|PATCH|DELETE) (/\S*)(?: (\{.*\}))?")


def requests_in(lines):
    """[(method, path, body)] of the requests in a dry run's output lines, in order."""
    found = (REQUEST.search(line) for line in lines)
    return [(m[1], m[2], json.loads(m[3]) if m[3] else {}) for m in found if m]


def leds(dev):
    """The LEDs lit on dev's node, read with EVIOCGLED: e.g. ['LED_NUML']."""
    return sorted(ecodes.LED[code] for code in dev.leds())
