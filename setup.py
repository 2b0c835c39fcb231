"""Build hooks only (all metadata is in pyproject.toml): the command scripts, and the service files in the wheel.

Scripts: `octopanel` and every name in [tool.octopanel] commands get a three-line script calling cli.script().
pip's console_scripts wrapper would import `re` (about 5 ms, a third of `8status` through the daemon) only to
strip a Windows suffix, and would exit through sys.exit, tearing the interpreter down (cli.script says why not).

Service files: etc/, systemd/ and udev/ stay at the top of the source tree, where people look for them;
build_py copies the files `octopanel install` needs into octopanel/_data/ so that a non-editable install has
them too. An editable install reads them from the source tree instead (octopanel/cli/install.py, data_file).
"""

import os
import tomllib

from setuptools import setup
from setuptools.command.build_py import build_py

SERVICE_FILES = (
    "etc/config.yaml",
    "etc/keymap.yaml",
    "etc/klipper/octopanel.cfg",
    "etc/examples/macropad.yaml",
    "etc/examples/shuttlexpress.yaml",  # the demo's panel tour turns its jog wheel
    "systemd/octopanel.service",
    "udev/70-octopanel.rules",
)
SCRIPT_DIR = os.path.join("build", "octopanel-scripts")
# `#!python` is replaced by the installing interpreter's path (pip, setuptools).
SCRIPT = "#!python\nfrom octopanel.cli import script\nscript()\n"


class BuildPyWithServiceFiles(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for rel in SERVICE_FILES:
            target = os.path.join(self.build_lib, "octopanel", "_data", rel)
            self.mkpath(os.path.dirname(target))
            self.copy_file(rel, target)


def command_scripts():
    """Write the scripts (only when changed, to keep build timestamps) and return their paths."""
    with open("pyproject.toml", "rb") as f:
        names = ["octopanel", *tomllib.load(f)["tool"]["octopanel"]["commands"]]
    os.makedirs(SCRIPT_DIR, exist_ok=True)
    paths = []
    for name in names:
        path = os.path.join(SCRIPT_DIR, name)
        if not os.path.exists(path) or open(path).read() != SCRIPT:
            with open(path, "w") as f:
                f.write(SCRIPT)
        paths.append(path)
    return paths


setup(cmdclass={"build_py": BuildPyWithServiceFiles}, scripts=command_scripts())
