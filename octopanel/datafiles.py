"""Where the files shipped beside the code (etc/, systemd/, udev/) are: in the wheel or the source tree."""

from pathlib import Path

PACKAGED = Path(__file__).resolve().parent / "_data"  # filled by setup.py's build hook in a wheel
SOURCE = Path(__file__).resolve().parent.parent  # an editable install or a checkout


def shipped_path(rel: str) -> Path | None:
    """The path of a shipped file such as 'etc/keymap.yaml', or None if this installation lacks it."""
    for base in (PACKAGED, SOURCE):
        if (base / rel).is_file():
            return base / rel
    return None
