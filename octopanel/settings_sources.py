"""Where settings come from (the config file candidates, 8control's files), a stat-only stamp of them, and
the identity (URL, jog direction, limits) a daemon and a caller compare.

Stdlib `os` only: the fast path (cli/fast.py) stamps the caller's sources with it before every command,
and settings.load stamps what it read, so a daemon can tell whether a caller's settings are its own.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False  # not typing's: the fast path does not import typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from octopanel.settings import Settings

CREDENTIAL_NAME = "octoprint-api-key"
SYSTEM_CONFIG = "/etc/octopanel/config.yaml"
OCTOCMD_FILES = ("~/.octocmd.conf", "/etc/octocmd.conf")
URL_ENV, KEY_ENV, CONFIG_ENV = "OCTOPRINT_URL", "OCTOPRINT_API_KEY", "OCTOPANEL_CONFIG"


def user_config_path(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "octopanel", "config.yaml")


def config_candidates(env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return [env[CONFIG_ENV]]
    return [user_config_path(env), SYSTEM_CONFIG]


def is_file(path: str) -> bool:
    """os.path.isfile without the exception dance: a regular file, following symlinks."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def stamp_of(st: os.stat_result) -> list[int]:
    """Which file, at which version: a file rewritten since the stamp was taken gets a new one."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def caller_stamp(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The stamp settings.load would record for this process: its YAML file, its 8control file, OCTOPRINT_URL.

    Only the sources of the printer and the limits count; the API key's (key file, credential) do not."""
    env = os.environ if env is None else env
    stamp: dict[str, Any] = {"yaml": None, "octocmd": None, "url": env.get(URL_ENV) or None}
    for kind, paths in (("yaml", config_candidates(env)), ("octocmd", map(os.path.expanduser, OCTOCMD_FILES))):
        for path in paths:
            try:
                st = os.stat(path)
            except (OSError, ValueError):
                continue
            if stat.S_ISREG(st.st_mode):
                stamp[kind] = stamp_of(st)
                break
    return stamp


def identity(settings: Settings) -> dict[str, Any]:
    """What a command's outcome depends on besides the key: the printer, the jog direction and the limits."""
    return {
        "url": settings.values.get("url"),
        "backend": settings.values.get("backend"),
        "jog_direction": settings.values["jog_direction"],
        "limits": settings.limits,
    }


def same_as(settings: Settings, query: object) -> bool:
    """Whether a caller's `{"stamp": ...}` or `{"identity": ...}` (cli.fast.same_config) matches these settings."""
    if not isinstance(query, dict):
        return False
    if "stamp" in query:
        return query["stamp"] == settings.stamp
    return "identity" in query and query["identity"] == identity(settings)
