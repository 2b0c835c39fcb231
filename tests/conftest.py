"""Shared fixtures: one real OctoPrint with its Virtual Printer per session, and runners for our entry points."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from klipperfix import FIXTURES as KLIPPER_FIXTURES
from klipperfix import klipper, klipper_sim, own_klipper  # noqa: F401 (fixtures, found by name)
from secretscan import DISTINCT_KEY, scan_session, secrets

from octopanel.sandbox.virtualprinter import VirtualPrinter

BIN = Path(sys.executable).parent  # pip puts console scripts beside the interpreter
RUN_TIMEOUT_S = 60
# Variables that would let the developer's own setup leak into a test run.
LEAKY_PREFIXES = ("OCTOPRINT_", "OCTOPANEL_", "XDG_CONFIG_")


def pytest_collection_modifyitems(items):
    """Mark every test that needs the real OctoPrint (`octoprint`) or the real Klipper (`klipper`), so that
    `-m "not octoprint and not klipper"` is the fast subset; put the kernel tests (tests/kernel, in QEMU) last,
    keeping the order otherwise. (Hooks live here only: a second conftest.py in tests/kernel would shadow this
    module for `from conftest import ...`.)"""
    for item in items:
        if {"octoprint", "own_octoprint"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.octoprint)
        if KLIPPER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.klipper)
    items.sort(key=lambda item: item.get_closest_marker("kernel") is not None)


SESSION_SECRETS = []  # the keys the session's OctoPrint issued, for the scan at its end


@pytest.fixture(scope="session")
def octoprint():
    """A started and connected VirtualPrinter shared by the whole session (about 1 s to start)."""
    with VirtualPrinter() as vp:
        vp.connect()
        SESSION_SECRETS.extend(secrets(vp))
        yield vp


def pytest_sessionfinish(session):
    """No API key in any file the suite wrote or any output pytest captured, checked once every test ran
    (the kernel tests too), so the check never depends on the order of the tests."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    factory = getattr(session.config, "_tmp_path_factory", None)  # pytest's own, set by its tmp_path plugin
    if reporter is None or factory is None or session.config.option.collectonly:
        return
    keys = SESSION_SECRETS or [DISTINCT_KEY]
    problems = scan_session(factory.getbasetemp(), reporter.stats, keys)
    if problems:
        reporter.write_sep("=", "secrets leaked", red=True)
        for line in problems:
            reporter.write_line(line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def printer(octoprint):
    """The session's VirtualPrinter, reset to idle: connected, no job, factors 100 %, cold (~0.15 s)."""
    octoprint.reset()
    return octoprint


def _run(executable, args, vp, home, input=None, env=None):
    if not executable.exists():
        pytest.fail(f"{executable} is not installed; run `pip install -e .` in this venv first")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    full_env.update(HOME=str(home), OCTOPRINT_URL=vp.url, OCTOPRINT_API_KEY=vp.api_key)
    for key, value in (env or {}).items():  # a value of None removes the variable
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    return subprocess.run(
        [str(executable), *map(str, args)],
        input=input,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


@pytest.fixture
def run8(printer, tmp_path):
    """run8("8jog", 10, 0, 0, input=None, env=None) -> CompletedProcess of that installed 8xxx script.

    HOME is an empty temp dir and OCTOPRINT_URL/OCTOPRINT_API_KEY point at the session printer."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)

    def run(command, *args, input=None, env=None):
        name = command if command.startswith("8") else "8" + command
        return _run(BIN / name, args, printer, home, input=input, env=env)

    return run


@pytest.fixture
def runop(printer, tmp_path):
    """runop("jog", "x=10", input=None, env=None) -> CompletedProcess of the installed `octopanel` script."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)

    def run(*args, input=None, env=None):
        return _run(BIN / "octopanel", args, printer, home, input=input, env=env)

    return run
