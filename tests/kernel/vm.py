"""Kernel tests: run a guest script in a QEMU VM (tests/kernel/run-in-vm.sh) and hand its facts to the tests."""

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = HERE.parent.parent
RUNNER = HERE / "run-in-vm.sh"
# One VM session per test module, inside the first test's 300 s pytest-timeout; the VM itself stops earlier
# so that its console and the guest's log are reported instead of a bare timeout.
VM_TIMEOUT_S = 250


def qemu_missing():
    """Why QEMU cannot run here at all, or None."""
    if platform.machine() != "x86_64":
        return f"the VM runner boots an x86_64 kernel; this machine is {platform.machine()}"
    if shutil.which("qemu-system-x86_64") is None and not Path("/usr/bin/qemu-system-x86_64").exists():
        return "qemu-system-x86_64 is not installed (scripts/deps.sh installs qemu-system-x86 on Debian)"
    return None


def run_guest(script, log_path, env=None):
    """Run tests/kernel/<script> in a VM with this venv's python; return the facts it printed as JSON."""
    reason = qemu_missing()
    if reason:
        pytest.skip(reason)
    full_env = dict(os.environ, VM_UDEV="1", VM_MEM="1G", VM_TIMEOUT=str(VM_TIMEOUT_S), **(env or {}))
    names = [name for name in (env or {}) if name.startswith("KERNEL_")]
    if names:
        full_env["VM_ENV"] = " ".join(names)
    with open(log_path, "w") as log:
        proc = subprocess.run(
            [str(RUNNER), sys.executable, str(HERE / script)],
            cwd=REPO,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            timeout=VM_TIMEOUT_S + 30,
        )
    tail = "".join(Path(log_path).read_text(errors="replace").splitlines(True)[-60:])
    if proc.returncode != 0:
        pytest.fail(f"{script} in the VM exited {proc.returncode}; guest log {log_path}:\n{tail}")
    try:
        facts = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        pytest.fail(f"{script} printed no facts; stdout {proc.stdout[-2000:]!r}; guest log {log_path}:\n{tail}")
    if "guest_error" in facts:
        pytest.fail(f"{script} failed in the VM: {facts['guest_error']}; guest log {log_path}:\n{tail}")
    facts["_log"] = str(log_path)
    return facts


def sum_axis(jogs, axis):
    """Total distance along axis of some jog request bodies (merging may combine detents: the sum counts)."""
    return round(sum(body.get(axis, 0) for body in jogs), 3)


def axes(jogs):
    return {axis for body in jogs for axis in ("x", "y", "z") if axis in body}
