"""Settings: flags, environment, octopanel's YAML, octocmd.conf, systemd credential, in that order."""

import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from octopanel import settings_sources
from octopanel import values as values_mod
from octopanel.credentials import check_header_text, checked_url, read_secret, warn_if_readable
from octopanel.errors import ConfigError
from octopanel.filecap import read_text_capped
from octopanel.gcode import klipper as klipper_rules
from octopanel.settings_sources import CREDENTIAL_NAME, OCTOCMD_FILES

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

# name: (converter, default, minval, maxval, help). Limits are also the bounds of action parameters.
OPTIONS = {
    "url": (values_mod.to_str, None, None, None, "OctoPrint or Moonraker base URL, may carry a path prefix"),
    "backend": (values_mod.to_str, "auto", None, None, "octoprint, moonraker (Klipper) or auto (ask the URL once)"),
    "api_key": (values_mod.to_str, None, None, None, "OctoPrint API key (prefer api_key_file)"),
    "api_key_file": (values_mod.to_str, None, None, None, "file holding the API key"),
    "connect_timeout": (values_mod.to_float, 5.0, 0.1, 120.0, "seconds to wait for a connection"),
    "read_timeout": (values_mod.to_float, 10.0, 0.1, 600.0, "seconds to wait for an answer"),
    "jog_direction": (
        values_mod.to_str,
        "profile",
        None,
        None,
        "profile (follow the printer profile's inverted axes, like the web UI), "
        "8control (flip every axis, like 8control) or raw",
    ),
    "max_tool_temp": (values_mod.to_float, 285.0, 0.0, 500.0, "highest hotend target accepted (°C)"),
    "max_bed_temp": (values_mod.to_float, 120.0, 0.0, 200.0, "highest bed target accepted (°C)"),
    "min_extrude_temp": (values_mod.to_float, 170.0, 0.0, 400.0, "coldest hotend that may extrude (°C)"),
    "min_factor": (values_mod.to_int, 10, 1, 1000, "lowest speed or flow factor (%)"),
    "max_factor": (values_mod.to_int, 500, 1, 1000, "highest speed or flow factor (%)"),
    "max_jog": (values_mod.to_float, 300.0, 0.1, 2000.0, "longest single jog (mm)"),
    "max_extrude": (values_mod.to_float, 1000.0, 0.1, 5000.0, "longest single extrusion (mm)"),
    "klipper_allowed_while_printing": (
        klipper_rules.command_names,
        (),
        None,
        None,
        "Klipper macros (names) that 8g and g keys may run while a job prints, beside the built-in allow list",
    ),
}
JOG_DIRECTIONS = ("profile", "8control", "raw")
CHOICES = {"jog_direction": JOG_DIRECTIONS, "backend": ("auto", "octoprint", "moonraker")}
T = TypeVar("T")
ENV_NAMES = (("url", "OCTOPRINT_URL"), ("api_key", "OCTOPRINT_API_KEY"), ("backend", "OCTOPANEL_BACKEND"))
LIMIT_NAMES = (
    "max_tool_temp",
    "max_bed_temp",
    "min_extrude_temp",
    "min_factor",
    "max_factor",
    "max_jog",
    "max_extrude",
)
MAX_CONFIG_BYTES = 1 << 20
API_KEY_FLAG_WARNING = (
    "--api-key on the command line is visible to every user through ps; prefer api_key_file: in "
    "~/.config/octopanel/config.yaml, OCTOPRINT_API_KEY, or the systemd credential octoprint-api-key "
    "(LoadCredential=)"
)


class Option(Generic[T]):
    """A typed read-only view of one of OPTIONS in Settings.values (the name is the attribute's)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, settings: "Settings", owner: type | None = None) -> T:
        return settings.values.get(self.name)  # type: ignore[return-value]  # load() sets every option


class Settings:
    """Resolved settings and, for 8checkcfg, where each one came from."""

    url = Option[str | None]()
    backend = Option[str]()
    api_key = Option[str | None]()
    api_key_file = Option[str | None]()
    connect_timeout = Option[float]()
    read_timeout = Option[float]()
    jog_direction = Option[str]()
    max_tool_temp = Option[float]()
    max_bed_temp = Option[float]()
    min_extrude_temp = Option[float]()
    min_factor = Option[int]()
    max_factor = Option[int]()
    max_jog = Option[float]()
    max_extrude = Option[float]()
    klipper_allowed_while_printing = Option[tuple[str, ...]]()

    def __init__(
        self,
        values: dict[str, Any] | None = None,
        sources: dict[str, str] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.values = {} if values is None else values
        self.sources = {} if sources is None else sources
        self.warnings = [] if warnings is None else warnings
        # What settings.load read the printer and limits from (settings_sources.caller_stamp's shape).
        self.stamp: dict[str, Any] = {"yaml": None, "octocmd": None, "url": None}

    def __repr__(self) -> str:
        return f"Settings(values={self.values!r}, sources={self.sources!r}, warnings={self.warnings!r})"

    @property
    def limits(self) -> dict[str, float]:
        return {name: self.values[name] for name in LIMIT_NAMES}

    def require_connection(self) -> None:
        """Raise ConfigError describing what is expected when no URL or key was found."""
        missing = [name for name in ("url", "api_key") if not self.values.get(name)]
        if missing:
            raise ConfigError(
                f"no OctoPrint {' and '.join(m.replace('_', ' ') for m in missing)} configured. Give one of:\n"
                "  --url URL --api-key KEY\n"
                "  OCTOPRINT_URL and OCTOPRINT_API_KEY in the environment\n"
                f"  {user_config_path()}:  url: http://octopi.local\\n api_key_file: /path/to/key\n"
                '  ~/.octocmd.conf or /etc/octocmd.conf:  {"OctoPrint_URL": "http://...", "OctoAPI_KEY": "..."}\n'
                f"  a systemd credential named {CREDENTIAL_NAME}\n"
                "or run: octopanel login URL"
            )


def user_config_path() -> Path:
    return Path(settings_sources.user_config_path())


def config_candidates() -> list[Path]:
    return [Path(p) for p in settings_sources.config_candidates()]


def load(
    flags: Mapping[str, Any] | None = None,
    config_path: "str | os.PathLike[str] | None" = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings. `flags` holds values given on the command line (None = not given)."""
    env = os.environ if env is None else env
    settings = Settings()
    for name, (_conv, default, *_rest) in OPTIONS.items():
        settings.values[name] = default
        settings.sources[name] = "default"
    layers: list[tuple[str, Mapping[str, Any]]] = []  # lowest priority first; later layers override
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / CREDENTIAL_NAME).is_file():
        cred = Path(cred_dir) / CREDENTIAL_NAME
        layers.append((f"systemd credential {cred}", {"api_key": read_secret(cred, settings, warn=False)}))
    layers.extend(reversed(octocmd_layers(settings)))
    path = Path(config_path) if config_path else next((p for p in config_candidates() if p.is_file()), None)
    if config_path and not path.exists():  # type: ignore[union-attr]  # given: path is Path(config_path)
        raise ConfigError("config file not found", str(path))
    if path is not None:
        layers.append((str(path), read_yaml_config(path, settings)))
    layers.append(
        (
            "environment",
            {k: env[e] for k, e in ENV_NAMES if env.get(e)},
        )
    )
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    layers.append(("command line", flags))
    settings.stamp["url"] = flags.get("url", env.get("OCTOPRINT_URL") or None)
    if "api_key" in flags:
        settings.warnings.append(API_KEY_FLAG_WARNING)
    for source, values in layers:
        for name, value in values.items():
            settings.values[name] = value
            settings.sources[name] = source
    for name, allowed in CHOICES.items():
        if settings.values[name] not in allowed:
            got = settings.values[name]
            raise ConfigError(
                f"{name} must be one of {', '.join(allowed)}, got '{got}'{values_mod.suggest(str(got), allowed)}",
                settings.sources[name],
            )
    if settings.values.get("url"):
        settings.values["url"] = checked_url(settings.values["url"], settings.sources["url"])
    check_header_text("api_key", settings.values.get("api_key"), settings.sources["api_key"])
    return settings


def read_yaml_config(path: Path, settings: Settings) -> dict[str, Any]:
    from octopanel import lineyaml  # PyYAML costs ~10 ms to import: only when a YAML file is read

    text, st = read_text_capped(path, MAX_CONFIG_BYTES, "the config file")
    settings.stamp["yaml"] = settings_sources.stamp_of(st)
    data = lineyaml.load(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of settings", str(path), getattr(data, "line", 1))
    values: dict[str, Any] = {}
    for key, raw in data.items():
        line = lineyaml.line_of(data, key)
        if key == "daemon":
            continue  # the daemon's section is validated by the daemon's own loader
        if key not in OPTIONS:
            raise ConfigError(f"unknown setting{values_mod.suggest(key, OPTIONS)}", str(path), line, str(key))
        conv, _default, lo, hi, _help = OPTIONS[key]
        try:
            value = conv(raw)
        except ValueError as exc:
            raise ConfigError(str(exc), str(path), line, key) from None
        problem = values_mod.check_range(value, lo, hi) if isinstance(value, (int, float)) else None
        if problem:
            raise ConfigError(problem, str(path), line, key)
        values[key] = value
    if "api_key" in values:
        warn_if_readable(path, settings)
    if "api_key_file" in values:
        key_path = Path(os.path.expanduser(values["api_key_file"]))
        if not key_path.is_absolute():
            key_path = path.parent / key_path
        values["api_key"] = read_secret(key_path, settings)
    return values


def octocmd_layers(settings: Settings, files: Iterable[str] = OCTOCMD_FILES) -> list[tuple[str, dict[str, Any]]]:
    """8control's files: the first that exists is read (~/.octocmd.conf, else /etc/octocmd.conf), as 8control does."""
    for path in (Path(os.path.expanduser(f)) for f in files):
        if not path.is_file():
            continue
        text, st = read_text_capped(path, MAX_CONFIG_BYTES, "8control's config file")
        settings.stamp["octocmd"] = settings_sources.stamp_of(st)
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"not valid JSON: {exc}", str(path)) from None
        except RecursionError:
            raise ConfigError("not valid JSON: nested too deeply (it should be one flat object)", str(path)) from None
        if not isinstance(data, dict):
            raise ConfigError('expected {"OctoPrint_URL": ..., "OctoAPI_KEY": ...}', str(path))
        values = {}
        if data.get("OctoPrint_URL"):
            values["url"] = str(data["OctoPrint_URL"])
        if data.get("OctoAPI_KEY"):
            values["api_key"] = str(data["OctoAPI_KEY"])
            warn_if_readable(path, settings)
        return [(str(path), values)]
    return []


def write_user_config(values: Mapping[str, Any], path: "str | os.PathLike[str] | None" = None) -> Path:
    """Write (merging) octopanel's config file with mode 0600, since it may hold the API key."""
    path = Path(path) if path else (config_candidates()[0])
    from octopanel import lineyaml

    existing: dict[str, Any] = {}
    if path.is_file():
        existing = dict(lineyaml.load_file(path) or {})
    existing.update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    import yaml

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        yaml.safe_dump({k: v for k, v in existing.items()}, handle, default_flow_style=False, sort_keys=False)
    return path


def print_warnings(settings: Settings, stream: "SupportsWrite[str] | None" = None) -> None:
    for warning in settings.warnings:
        print(f"warning: {warning}", file=stream or sys.stderr)
