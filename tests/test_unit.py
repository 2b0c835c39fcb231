"""The service files themselves: systemd-analyze verify and security on the unit, its sandbox, the udev rule."""

import ctypes
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BIN, LEAKY_PREFIXES
from daemonproc import press
from evdev import ecodes as e

from octopanel.cli.install import render_unit

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd/octopanel.service"
RULES = ROOT / "udev/70-octopanel.rules"
MAX_EXPOSURE = 4.0
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def analyze(*args):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: install the Debian package systemd (test.sh does)")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)


def rendered(tmp_path, binary=BIN / "octopanel"):
    """The unit as `octopanel install` writes it, naming an executable that exists (verify checks that)."""
    path = tmp_path / "octopanel.service"
    path.write_bytes(render_unit(binary))
    return path


def test_verify_prints_nothing_for_the_installed_unit(tmp_path):
    out = analyze("verify", str(rendered(tmp_path)))
    assert (out.returncode, out.stdout + out.stderr) == (0, "")


def test_verify_would_catch_a_misspelled_option(tmp_path):
    """The check above means something: a typo is only a warning, and it is printed."""
    path = rendered(tmp_path)
    path.write_text(path.read_text().replace("PrivateTmp=yes", "PrivateTpm=yes"))
    out = analyze("verify", str(path))
    assert "Unknown key name 'PrivateTpm'" in out.stderr or "Unknown key 'PrivateTpm'" in out.stderr, out.stderr


def test_shipped_unit_is_what_install_renders_for_usr_local():
    assert render_unit("/usr/local/bin/octopanel").decode() == UNIT.read_text()


@pytest.mark.parametrize("which", ["shipped", "rendered"])
def test_security_exposure_is_at_most_4(tmp_path, which):
    path = UNIT if which == "shipped" else rendered(tmp_path)
    out = analyze("security", "--offline=true", str(path))
    match = re.search(r"Overall exposure level for octopanel\.service: (\d+\.\d+)", out.stdout + out.stderr)
    assert match, out.stdout + out.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, out.stdout


def unit_option(name):
    return [line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if line.startswith(name + "=")]


def test_unit_contract():
    """What the daemon and the installer rely on; each line is explained in the unit's comments."""
    assert unit_option("Type") == ["notify"]
    assert unit_option("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert unit_option("RuntimeDirectory") == ["octopanel"] and unit_option("RuntimeDirectoryMode") == ["0750"]
    assert unit_option("LoadCredential") == ["octoprint-api-key:/etc/octopanel/api-key"]
    assert unit_option("User") == ["octopanel"] and unit_option("SupplementaryGroups") == ["input"]
    assert unit_option("RestrictAddressFamilies") == ["AF_UNIX AF_INET AF_INET6"]
    assert unit_option("MemoryDenyWriteExecute") == ["yes"]
    watchdog = unit_option("WatchdogSec")[0]
    assert watchdog.endswith("s") and int(watchdog[:-1]) >= 10


MDWE_EXEC = f"""\
import ctypes, mmap, os, sys
assert ctypes.CDLL(None, use_errno=True).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) == 0, "PR_SET_MDWE failed"
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("W+X memory was allowed: MDWE is not in force")
except OSError:
    pass
os.execv(sys.argv[1], sys.argv[1:])  # the kernel keeps MDWE across execve
"""


def test_daemon_runs_with_write_execute_memory_denied(tmp_path):
    """MemoryDenyWriteExecute=yes, emulated by the kernel's own MDWE (Linux 6.3+): CPython, ctypes (hotplug),
    PyYAML, evdev, requests and systemd-python must all work without W+X memory."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_MDWE + 1, 0, 0, 0, 0) < 0:  # PR_GET_MDWE
        pytest.skip("this kernel has no PR_SET_MDWE")
    wrapper = tmp_path / "mdwe_exec.py"
    wrapper.write_text(MDWE_EXEC)
    keymap = tmp_path / "keymap.yaml"
    keymap.write_text('keys:\n  KEY_KP5: "msg hello"\n')
    recording = tmp_path / "rec.bin"
    recording.write_bytes(press(e.KEY_KP5, 1) + press(e.KEY_KP5, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    env["HOME"] = str(tmp_path)

    def under_mdwe(*args):
        return subprocess.run(
            [sys.executable, str(wrapper), sys.executable, *args], capture_output=True, text=True, env=env, timeout=60
        )

    check = under_mdwe("-c", f"import ctypes; print(ctypes.CDLL(None).prctl({PR_SET_MDWE + 1}, 0, 0, 0, 0))")
    assert check.stdout.strip() == str(PR_MDWE_REFUSE_EXEC_GAIN), check.stderr  # in force after exec
    out = under_mdwe(
        "-c",
        "import ctypes, evdev, yaml, requests, systemd.daemon, systemd.journal, sys, "
        "octopanel.input.hotplug; from octopanel.cli import main; "
        "sys.exit(main())",
        "run",
        "--replay",
        recording,
        "--speed",
        "0",
        "--keymap",
        keymap,
        "--dry-run",
        "--no-control",
    )
    assert out.returncode == 0, out.stderr
    assert "M117 hello" in out.stdout and "end of recording" in out.stderr


RULE_ITEM = re.compile(r'^(?:[A-Z_]+(?:\{[A-Za-z_]+\})?)\s*(?:==|!=|\+=|-=|:=|=)\s*"[^"]*"$')


def test_udev_rule_is_well_formed_and_starts_nothing():
    labels, gotos = set(), set()
    rules = [
        line.strip().lstrip("#")
        for line in RULES.read_text().splitlines()
        if line.strip() and (not line.startswith("#") or line.startswith(("#ENV", "#ATTRS", "#SUBSYSTEM")))
    ]
    assert rules, "no rules"
    for rule in rules:
        items = [item.strip() for item in rule.split(",")]
        for item in items:
            assert RULE_ITEM.match(item), f"{RULES.name}: not a udev match or assignment: {item!r}"
            assert not item.startswith("RUN"), "udev kills what RUN+= starts: start octopanel.service instead"
            if item.startswith("LABEL"):
                labels.add(item.split('"')[1])
            if item.startswith("GOTO"):
                gotos.add(item.split('"')[1])
    assert gotos == labels == {"octopanel_end"}
    text = RULES.read_text()
    assert 'ENV{ID_VENDOR_ID}=="0b33", ENV{ID_MODEL_ID}=="0020", GROUP="octopanel", MODE="0660"' in text
    assert 'TAG+="systemd", ENV{SYSTEMD_WANTS}+="octopanel.service"' in text
