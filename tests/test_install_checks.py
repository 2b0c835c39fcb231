"""`octopanel install` refuses (exit 2, nothing written) what the service cannot run safely: issue 10 §6."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LEAKY_PREFIXES
from installtree import Tree

from octopanel.cli.install_checks import check_service_paths
from octopanel.errors import UsageError

RECIPE = (
    "  sudo python3 -m venv /opt/octopanel && sudo /opt/octopanel/bin/pip install .\n"
    "  sudo /opt/octopanel/bin/octopanel install\n"
)
OTHER_UID = 4321  # no such user needed: root can chown to any uid


@pytest.fixture
def tree(tmp_path):
    return Tree(tmp_path / "sys")


def refused(tree, dest):
    """Run install against the tree; assert exit 2, one message with the recipe, nothing staged. The message."""
    out = tree.run("--destdir", dest)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("octopanel install: octopanel.service (User=octopanel) cannot safely use the ")
    assert out.stderr.endswith(RECIPE) and "Traceback" not in out.stderr
    assert not dest.exists()  # every check runs before the first write
    return out.stderr


def test_the_crafted_tree_itself_is_accepted(tree, tmp_path):
    out = tree.run("--destdir", tmp_path / "dest")
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stdout and out.stderr == ""


def test_a_sticky_world_writable_directory_on_the_way_is_refused(tree, tmp_path):
    (tree.root / "opt").chmod(0o1777)  # like /tmp: the sticky bit does not make it safe
    message = refused(tree, tmp_path / "dest")
    assert f"the venv {tree.prefix}; on the way to it, {tree.root}/opt is world-writable (mode 1777)" in message


def test_a_venv_owned_by_another_user_is_refused(tree, tmp_path):
    os.chown(tree.prefix, OTHER_UID, OTHER_UID)
    message = refused(tree, tmp_path / "dest")
    assert f"the venv {tree.prefix}: {tree.prefix} is owned by user {OTHER_UID}, not root" in message


def test_a_group_writable_package_directory_is_refused(tree, tmp_path):
    tree.package.parent.chmod(0o775)  # site-packages
    message = refused(tree, tmp_path / "dest")
    assert (
        f"the octopanel package directory {tree.package}; on the way to it, {tree.package.parent} is "
        "group-writable (mode 0775, group root (0))"
    ) in message


def test_a_directory_closed_to_others_is_refused(tree, tmp_path):
    (tree.prefix / "lib").chmod(0o750)
    message = refused(tree, tmp_path / "dest")
    assert (
        f"{tree.prefix}/lib is mode 0750: the service user octopanel is among the others, who need r-x "
        "to enter and list it"
    ) in message


def test_an_interpreter_that_others_cannot_run_is_refused_through_its_symlinks(tree, tmp_path):
    tree.python.chmod(0o750)
    message = refused(tree, tmp_path / "dest")
    assert (
        f"the Python interpreter {tree.prefix}/bin/python (it resolves to {tree.python}); on the way, "
        f"{tree.python} is mode 0750: the service user octopanel is among the others, who need r-x to run "
        "it"
    ) in message


@pytest.mark.parametrize("home, hidden", [("root", "root"), ("home/pi", "home"), ("run/user/1000", "run/user")])
def test_an_interpreter_resolving_into_a_home_directory_is_refused(tree, tmp_path, home, hidden):
    """The issue's case: the venv's python3 links to e.g. /root/.pyenv/versions/3.11.7/bin/python3.11."""
    pyenv = tree.root / home / ".pyenv/versions/3.11.7/bin"
    pyenv.mkdir(parents=True)
    tree.python.rename(pyenv / "python3.11")
    (tree.prefix / "bin/python3").unlink()
    (tree.prefix / "bin/python3").symlink_to(pyenv / "python3.11")
    message = refused(tree, tmp_path / "dest")
    assert (
        f"(it resolves to {pyenv}/python3.11); on the way, {tree.root / hidden} is a home directory, which "
        "ProtectHome=yes in octopanel.service hides from the service"
    ) in message


def test_a_symlinked_directory_is_checked_where_it_points(tree, tmp_path):
    """A root-owned link in a safe directory may still lead through a writable one."""
    public = tree.root / "srv/public"
    public.mkdir(parents=True)
    public.chmod(0o777)
    real = public / "lib"
    (tree.prefix / "lib").rename(real)
    (tree.prefix / "lib").symlink_to(real)
    message = refused(tree, tmp_path / "dest")
    assert f"on the way, {public} is world-writable (mode 0777)" in message


def test_a_symlink_loop_is_refused_not_a_traceback(tree, tmp_path):
    (tree.prefix / "bin/python3").unlink()
    (tree.prefix / "bin/python3").symlink_to("python")  # python -> python3 -> python
    message = refused(tree, tmp_path / "dest")
    assert "is part of a symlink loop" in message


def test_a_path_missing_here_is_refused_when_installing_for_real(tree):
    warnings = []
    with pytest.raises(
        UsageError, match=f"cannot safely use the venv {tree.root}/opt/gone: {tree.root}/opt/gone does not exist"
    ):
        check_service_paths([("venv", tree.root / "opt/gone", "dir")], True, warnings.append, tree.root)
    assert warnings == []


def octopanel(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    return subprocess.run(
        [sys.executable, "-m", "octopanel", *map(str, args)], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.parametrize("prefix", ["home", "tmp"])
def test_the_command_refuses_a_home_or_tmp_prefix_with_exit_2(tmp_path, prefix):
    """No injection: the real checks of the real machine, through `python -m octopanel install`."""
    where = "/home/pi/octopanel/.venv" if prefix == "home" else tmp_path / "venv"
    out = octopanel("install", "--destdir", tmp_path / "dest", "--prefix", where)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "cannot safely use the prefix" in out.stderr and out.stderr.endswith(RECIPE)
    if prefix == "home":
        assert "on the way to it, /home is a home directory" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "dest").exists()


@pytest.mark.skipif(
    not os.path.realpath(sys.executable).startswith(("/root/", "/home/")),
    reason="this test venv's Python is not under a home directory",
)
def test_a_venv_on_this_machines_python_which_lives_under_a_home_is_refused(tree, tmp_path):
    """The issue's report as it happens on this machine: .venv/bin/python -> /root/.pyenv/.../python3.11.

    The venv is the crafted tree's, linked to the real interpreter, so that wherever this checkout was cloned
    (a 0700 mktemp directory, say) the interpreter's own path is what gets refused."""
    real = os.path.realpath(sys.executable)
    home = "/" + Path(real).parts[1]
    assert home in ("/root", "/home"), f"this test needs the interpreter under a home directory, not {real}"
    (tree.prefix / "bin/python3").unlink()
    (tree.prefix / "bin/python3").symlink_to(real)
    message = refused(tree, tmp_path / "dest")
    assert f"(it resolves to {real}); on the way, {home} is a home directory" in message, message


def test_a_file_where_a_directory_belongs_is_refused(tree, tmp_path):
    (tree.root / "srv").write_text("")
    out = tree.run("--destdir", tmp_path / "dest", "--prefix", tree.root / "srv/octopanel")
    assert out.returncode == 2 and f"on the way to it, {tree.root}/srv is not a directory" in out.stderr
    assert not (tmp_path / "dest").exists()


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no system Python in /usr/bin")
def test_a_venv_made_as_the_readme_says_is_accepted(tree, tmp_path):
    """`python3 -m venv` links bin/python3 to /usr/bin/python3: checked where it points, outside the tree."""
    prefix = tree.root / "opt/venv"
    # umask as under the README's sudo, whatever this test run has.
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", prefix], check=True, timeout=120, umask=0o022)
    (prefix / "bin/octopanel").write_text(f"#!{prefix}/bin/python3\n")
    (prefix / "bin/octopanel").chmod(0o755)
    out = tree.run("--destdir", tmp_path / "dest", "--prefix", prefix)
    assert out.returncode == 0, out.stderr
    assert os.path.realpath(prefix / "bin/python3").startswith("/usr/") and "warning" not in out.stdout
