"""A crafted root-owned tree holding a venv the service could run, for the installer's path checks."""

import contextlib
import io
import os
import types
from pathlib import Path

import pytest

from octopanel.cli import install


class Tree:
    """Under `root` (which stands for / through main's sysroot=): usr/bin/python3.11 and a venv in opt/octopanel."""

    def __init__(self, root):
        if os.geteuid() != 0:
            pytest.skip("a crafted tree must be owned by root, and only root can chown")
        self.root = Path(root)
        self.python = self.root / "usr/bin/python3.11"
        self.prefix = self.root / "opt/octopanel"
        self.binary = self.prefix / "bin/octopanel"
        self.package = self.prefix / "lib/python3.11/site-packages/octopanel"
        self.package.mkdir(parents=True)
        self.python.parent.mkdir(parents=True)
        self.binary.parent.mkdir()
        for directory in [self.root, *self.root.rglob("*")]:
            directory.chmod(0o755)  # whatever the umask: every component starts as safe as /opt/octopanel
        self.python.write_text("")
        self.python.chmod(0o755)
        (self.prefix / "pyvenv.cfg").write_text(f"home = {self.python.parent}\n")
        (self.prefix / "bin/python3").symlink_to(self.python)  # as venv makes it: absolute, then relative
        (self.prefix / "bin/python").symlink_to("python3")
        self.binary.write_text(f"#!{self.prefix}/bin/python\nimport sys\n")
        self.binary.chmod(0o755)
        (self.package / "__init__.py").write_text("")

    def run(self, *args, name="install"):
        """Like subprocess.run(octopanel install ... --prefix PREFIX): returncode, stdout, stderr."""
        out, err = io.StringIO(), io.StringIO()
        # The tree's --prefix first, so that a test's own --prefix wins.
        argv = (["--prefix", str(self.prefix)] if name == "install" else []) + [str(a) for a in args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = install.main(name, argv, sysroot=self.root)
        return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
