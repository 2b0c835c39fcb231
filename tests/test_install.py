"""`octopanel install | uninstall --destdir`: every file where the service expects it, idempotent, never clobbering."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BIN, LEAKY_PREFIXES
from installtree import Tree

from octopanel.cli import install as installer

ROOT = Path(__file__).resolve().parent.parent
# Path under DESTDIR -> (mode, shipped file it copies; None for the rendered unit).
EXPECTED = {
    "etc/octopanel": (0o750, None),
    "etc/octopanel/config.yaml": (0o640, "etc/config.yaml"),
    "etc/octopanel/keymap.yaml": (0o640, "etc/keymap.yaml"),
    "etc/systemd/system/octopanel.service": (0o644, None),
    "etc/udev/rules.d/70-octopanel.rules": (0o644, "udev/70-octopanel.rules"),
}
FILES = [rel for rel in EXPECTED if rel != "etc/octopanel"]


def octopanel(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    return subprocess.run(
        [sys.executable, "-m", "octopanel", *map(str, args)], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def tree(tmp_path_factory):
    """A venv the checks accept, outside the destdir: the test venv's own Python may live under /root."""
    return Tree(tmp_path_factory.mktemp("sys"))


def install(tree, destdir, *args):
    """octopanel install --destdir DESTDIR --prefix (the crafted venv) ARGS: its stdout."""
    out = tree.run("--destdir", destdir, *args)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def snapshot(destdir):
    """Every file and directory under destdir: its mode, mtime and bytes."""
    found = {}
    for path in sorted(Path(destdir).rglob("*")):
        st = path.stat()
        data = path.read_bytes() if path.is_file() else None
        found[str(path.relative_to(destdir))] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns, data)
    return found


def report(out, rel, destdir):
    """The verb the installer printed for one path (created, kept, updated...)."""
    target = str(Path(destdir) / rel)
    lines = [line for line in out.splitlines() if [word.rstrip("/") for word in line.split()[1:2]] == [target]]
    assert len(lines) == 1, out
    return lines[0].split()[0]


def test_install_puts_every_file_in_place_with_its_mode(tmp_path, tree):
    out = install(tree, tmp_path)
    found = snapshot(tmp_path)
    leaves = {rel for rel in found if not any(other.startswith(rel + "/") for other in found)}
    assert leaves == set(FILES), sorted(found)
    for rel, (mode, source) in EXPECTED.items():
        assert found[rel][0] == mode, f"{rel}: {found[rel][0]:o}"
        if source is not None:
            assert found[rel][2] == (ROOT / source).read_bytes(), rel
        assert report(out, rel, tmp_path) == "created"
    unit = found["etc/systemd/system/octopanel.service"][2].decode()
    binary = tree.binary
    assert (
        f"\nExecStart={binary} run --keymap /etc/octopanel/keymap.yaml --config /etc/octopanel/config.yaml "
        "--control-group octopanel\n" in unit
    )
    assert f"\nExecStartPre={binary} check /etc/octopanel/keymap.yaml\n" in unit
    assert "/usr/local/bin" not in unit
    shipped = (ROOT / "systemd/octopanel.service").read_text()
    assert unit.replace(str(binary), "/usr/local/bin/octopanel") == shipped
    # Nothing is done to this machine: the commands are printed.
    assert "would run systemctl daemon-reload" in out
    assert "would run udevadm control --reload" in out
    assert "would run udevadm trigger --subsystem-match=input --action=change" in out
    assert "would run systemctl enable octopanel.service" in out  # no API key yet: enabled, not started
    assert "/etc/octopanel/api-key" in out and "--api-key-file" in out


def test_second_run_changes_nothing_and_says_kept(tmp_path, tree):
    install(tree, tmp_path)
    before = snapshot(tmp_path)
    out = install(tree, tmp_path)
    assert snapshot(tmp_path) == before
    for rel in EXPECTED:
        assert report(out, rel, tmp_path) == "kept", out
    assert "created" not in out and "updated" not in out and "udevadm trigger" not in out


def test_an_edited_keymap_or_config_is_never_overwritten_but_the_unit_is_ours(tmp_path, tree):
    install(tree, tmp_path)
    keymap = tmp_path / "etc/octopanel/keymap.yaml"
    config = tmp_path / "etc/octopanel/config.yaml"
    unit = tmp_path / "etc/systemd/system/octopanel.service"
    keymap.write_text("keys:\n  KEY_KP5: getpos\n")
    config.write_text("url: http://octopi.local\n")
    good_unit = unit.read_bytes()
    unit.write_text("[Service]\nExecStart=/bin/false\n")
    out = install(tree, tmp_path)
    assert keymap.read_text() == "keys:\n  KEY_KP5: getpos\n"
    assert config.read_text() == "url: http://octopi.local\n"
    assert report(out, "etc/octopanel/keymap.yaml", tmp_path) == "kept"
    assert "never overwritten" in out
    assert unit.read_bytes() == good_unit
    assert report(out, "etc/systemd/system/octopanel.service", tmp_path) == "updated"


def test_api_key_file_is_copied_root_only_and_the_service_started(tmp_path, tree):
    key = tmp_path / "key.txt"
    key.write_text("  ABCDEF0123456789ABCDEF0123456789\n")
    dest = tmp_path / "dest"
    out = install(tree, dest, "--api-key-file", key)
    api_key = dest / "etc/octopanel/api-key"
    assert api_key.read_text() == "ABCDEF0123456789ABCDEF0123456789\n"
    assert stat.S_IMODE(api_key.stat().st_mode) == 0o600
    assert "would run systemctl enable --now octopanel.service" in out
    assert "Put OctoPrint's API key" not in out
    assert report(install(tree, dest, "--api-key-file", key), "etc/octopanel/api-key", dest) == "kept"


def test_an_empty_api_key_file_is_a_usage_error(tmp_path, tree):
    key = tmp_path / "key.txt"
    key.write_text("\n")
    out = tree.run("--destdir", tmp_path / "dest", "--api-key-file", key)
    assert out.returncode == 2
    assert "must hold one API key on one line" in out.stderr
    assert not (tmp_path / "dest").exists()  # checked before anything was written


def test_prefix_names_the_executable_and_one_missing_here_is_only_warned_of_when_staging(tmp_path, tree):
    elsewhere = tree.root / "opt/elsewhere"  # --destdir may stage for another machine
    out = install(tree, tmp_path, "--prefix", elsewhere, "--no-enable")
    unit = (tmp_path / "etc/systemd/system/octopanel.service").read_text()
    assert f"\nExecStart={elsewhere}/bin/octopanel run " in unit
    assert f"warning: cannot check the prefix {elsewhere}: {elsewhere} does not exist on this machine" in out
    assert "would run systemctl enable" not in out and "Start it: sudo systemctl enable --now" in out


def test_the_default_is_the_octopanel_beside_this_python_and_its_shebang_names_the_interpreter():
    assert installer.default_bin() == BIN / "octopanel"
    assert os.path.samefile(installer.interpreter(BIN / "octopanel"), sys.executable)


def test_uninstall_removes_unit_and_rule_and_keeps_etc_octopanel_unless_purged(tmp_path, tree):
    install(tree, tmp_path)
    out = octopanel("uninstall", "--destdir", tmp_path)
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "etc/systemd/system/octopanel.service").exists()
    assert not (tmp_path / "etc/udev/rules.d/70-octopanel.rules").exists()
    assert (tmp_path / "etc/octopanel/keymap.yaml").is_file()
    assert "would run systemctl disable --now octopanel.service" in out.stdout
    assert "--purge removes them" in out.stdout
    again = octopanel("uninstall", "--destdir", tmp_path)
    assert again.returncode == 0 and "absent" in again.stdout
    purged = octopanel("uninstall", "--destdir", tmp_path, "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not (tmp_path / "etc/octopanel").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="as root this would really install")
def test_a_real_install_needs_root():
    out = octopanel("install")
    assert out.returncode == 2
    assert "install needs root: sudo" in out.stderr and "--destdir" in out.stderr


def test_the_wheel_carries_the_service_files(tmp_path):
    """A non-editable install has no source tree: setup.py's build_py copies the files into octopanel/_data."""
    pytest.importorskip("setuptools")
    build = tmp_path / "build"
    out = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    shipped = ("etc/config.yaml", "etc/keymap.yaml", "etc/examples/shuttlexpress.yaml", "systemd/octopanel.service")
    for rel in (*shipped, "etc/klipper/octopanel.cfg", "udev/70-octopanel.rules"):
        assert (build / "octopanel/_data" / rel).read_bytes() == (ROOT / rel).read_bytes(), rel
    probe = (
        "import octopanel, octopanel.cli.install as i; print(octopanel.__file__); "
        "print(len(i.data_file('udev/70-octopanel.rules')))"
    )
    env = {**os.environ, "PYTHONPATH": str(build)}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    where, size = out.stdout.split()
    assert where.startswith(str(build)) and int(size) == (ROOT / "udev/70-octopanel.rules").stat().st_size
