"""Build hook only (all metadata is in pyproject.toml): ship the service files inside the wheel.

etc/, systemd/ and udev/ stay at the top of the source tree, where people look for them; build_py copies
the files `octopanel install` needs into octopanel/_data/ so that a non-editable install has them too.
An editable install reads them from the source tree instead (octopanel/install.py, data_file).
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

SERVICE_FILES = ("etc/config.yaml", "etc/keymap.yaml", "systemd/octopanel.service", "udev/70-octopanel.rules")


class BuildPyWithServiceFiles(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for rel in SERVICE_FILES:
            target = os.path.join(self.build_lib, "octopanel", "_data", rel)
            self.mkpath(os.path.dirname(target))
            self.copy_file(rel, target)


setup(cmdclass={"build_py": BuildPyWithServiceFiles})
