"""Which devices to read: a DeviceSpec, from the keymap's `devices:` or a shorthand, and whether a node fits it.

Its own module so that validating a keymap never imports the runtime device manager (input/devices.py).
"""

import fnmatch
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from octopanel import values
from octopanel.errors import ConfigError

if TYPE_CHECKING:
    from octopanel.input.discovery import DeviceInfo

SPEC_KEYS = ("name", "id", "phys", "path", "grab", "shuttle", "label")
_ID = re.compile(r"([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,4})")


@dataclass(frozen=True)
class DeviceSpec:
    """A device to use: every matcher given must match (name and phys are globs; name ignores case)."""

    name: str | None = None
    vendor: int | None = None
    product: int | None = None
    phys: str | None = None
    path: str | None = None
    grab: bool = True
    shuttle: bool = False
    label: str | None = None

    @classmethod
    def parse(cls, text: str, **options: Any) -> "DeviceSpec":
        """Shorthand: '/dev/input/...' is a path, 'vvvv:pppp' an id, anything else a name glob."""
        if text.startswith("/"):
            return cls(path=text, **options)
        match = _ID.fullmatch(text)
        if match:
            return cls(vendor=int(match.group(1), 16), product=int(match.group(2), 16), **options)
        return cls(name=text, **options)

    @classmethod
    def from_config(
        cls, value: object, file: str | None = None, line: int | None = None, path: str = "devices"
    ) -> "DeviceSpec":
        """A spec from a config entry (a shorthand string or a mapping of SPEC_KEYS); ConfigError if wrong."""
        if isinstance(value, str):
            return cls.parse(value)
        if not isinstance(value, dict):
            raise ConfigError(
                f"expected a device name, id, path or a mapping, got {values.show(value)}", file, line, path
            )
        fields: dict[str, Any] = {}
        for key, item in value.items():
            where = f"{path}.{key}"
            if key not in SPEC_KEYS:
                hint = values.suggest(key, SPEC_KEYS) or f" (expected one of {', '.join(SPEC_KEYS)})"
                raise ConfigError(f"unknown option '{key}'{hint}", file, line, path)
            if key in ("grab", "shuttle"):
                if not isinstance(item, bool):
                    raise ConfigError(f"expected true or false, got {values.show(item)}", file, line, where)
                fields[key] = item
            elif not isinstance(item, str) or not item:
                raise ConfigError(f"expected a non-empty string, got {values.show(item)}", file, line, where)
            elif key == "id":
                match = _ID.fullmatch(item)
                if not match:
                    raise ConfigError(
                        f"expected vendor:product in hex like 0b33:0020, got {values.show(item)}", file, line, where
                    )
                fields["vendor"], fields["product"] = int(match.group(1), 16), int(match.group(2), 16)
            else:
                fields[key] = item
        if not any(k in value for k in ("name", "id", "phys", "path")):
            raise ConfigError("a device needs at least one of name, id, phys or path", file, line, path)
        return cls(**fields)

    def matches(self, info: "DeviceInfo") -> bool:
        """True if the event node fits every matcher; a node that could not be read fits only by path."""
        if info.error and (self.name is not None or self.vendor is not None or self.phys is not None):
            return False
        if self.name is not None and not fnmatch.fnmatchcase(info.name.lower(), self.name.lower()):
            return False
        if self.vendor is not None and (info.vendor, info.product) != (self.vendor, self.product):
            return False
        if self.phys is not None and not fnmatch.fnmatchcase(info.phys, self.phys):
            return False
        if self.path is not None:
            # by-id links move to the new node on replug, so resolve them at every scan.
            return self.path in (info.path, *info.by_id) or os.path.realpath(self.path) == info.path
        return True

    def __str__(self) -> str:
        parts = [f"name={self.name!r}"] if self.name is not None else []
        if self.vendor is not None:
            parts.append(f"id={self.vendor:04x}:{self.product:04x}")
        parts += [f"{k}={getattr(self, k)}" for k in ("phys", "path") if getattr(self, k) is not None]
        text = " ".join(parts)
        return f"{self.label} ({text})" if self.label else text
