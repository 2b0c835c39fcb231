"""What input devices exist: event nodes with name, ids, phys, by-id links and capabilities."""

import os
import pwd
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import evdev
from evdev import ecodes

INPUT_DIR = "/dev/input"
GROUP_HINT = (
    "add the user to group input (sudo usermod -aG input {user}, then log in again); "
    "a systemd service needs SupplementaryGroups=input"
)


@dataclass(frozen=True)
class DeviceInfo:
    """One event node as the lister sees it; ``error`` is set (and the rest empty) if it could not be opened."""

    path: str
    name: str = ""
    vendor: int = 0
    product: int = 0
    phys: str = ""
    by_id: tuple[str, ...] = ()
    keys: int = 0
    rel: tuple[str, ...] = ()
    leds: tuple[str, ...] = ()
    error: str | None = None

    @property
    def physical(self) -> str:
        """The physical device this node belongs to: phys up to its last '/input', else the by-id base name."""
        if self.phys:
            return self.phys.rsplit("/input", 1)[0]
        for link in self.by_id:
            return "by-id:" + re.sub(r"-(if\d+-)?event(-\w+)?$", "", os.path.basename(link))
        return self.path


def _by_id_links(root: str) -> dict[str, tuple[str, ...]]:
    """{real node path: (by-id links,)} for the links under root/by-id."""
    links: dict[str, list[str]] = {}
    directory = os.path.join(root, "by-id")
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return {}
    for name in names:
        link = os.path.join(directory, name)
        links.setdefault(os.path.realpath(link), []).append(link)
    return {path: tuple(found) for path, found in links.items()}


def _node_number(name: str) -> int:
    digits = name[len("event") :]
    return int(digits) if digits.isdigit() else 1 << 30


def list_descriptors(
    root: str = INPUT_DIR, capabilities: bool = False, open_device: Callable[[str], Any] = evdev.InputDevice
) -> list[DeviceInfo]:
    """Every event node under root, sorted by number; [] if root does not exist."""
    try:
        names = sorted((n for n in os.listdir(root) if n.startswith("event")), key=_node_number)
    except OSError:
        return []  # no such directory, or not readable: format_devices says which
    links = _by_id_links(root)
    infos = []
    for name in names:
        path = os.path.join(root, name)
        by_id = links.get(os.path.realpath(path), ())
        try:
            device = open_device(path)
        except PermissionError:
            infos.append(DeviceInfo(path, by_id=by_id, error="permission denied"))
            continue
        except OSError as exc:
            infos.append(DeviceInfo(path, by_id=by_id, error=exc.strerror or str(exc)))
            continue
        try:
            extra = _capabilities(device) if capabilities else {}
            infos.append(
                DeviceInfo(
                    path, device.name, device.info.vendor, device.info.product, device.phys or "", by_id, **extra
                )
            )
        finally:
            device.close()
    return infos


def _capabilities(device: evdev.InputDevice) -> dict[str, Any]:
    caps = device.capabilities()
    return {
        "keys": len(caps.get(ecodes.EV_KEY, ())),
        "rel": tuple(ecodes.REL.get(code, str(code)) for code in caps.get(ecodes.EV_REL, ())),
        "leds": tuple(ecodes.LED.get(code, str(code)) for code in caps.get(ecodes.EV_LED, ())),
    }


def list_devices(root: str = INPUT_DIR, open_device: Callable[[str], Any] = evdev.InputDevice) -> list[DeviceInfo]:
    """Every event node with its capabilities summary, for ``octopanel devices``."""
    return list_descriptors(root, capabilities=True, open_device=open_device)


def group_hint() -> str:
    """What to do about 'permission denied' on an event node."""
    return GROUP_HINT.format(user=_user())


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def format_devices(infos: Sequence[DeviceInfo], root: str = INPUT_DIR) -> tuple[str, int]:
    """The text ``octopanel devices`` prints, hints included, and its exit code (1 if nothing could be read)."""
    if not os.path.isdir(root):
        return (
            f"{root} does not exist: this machine has no input devices visible "
            "(in a container, pass the devices through; otherwise plug in the keypad and retry).\n",
            1,
        )
    if not infos and not os.access(root, os.R_OK | os.X_OK):
        return f"Cannot read {root}: {group_hint()}.\n", 1
    if not infos:
        return f"No input devices in {root}. Plug in the keypad or jog wheel and retry.\n", 0
    lines = []
    for info in infos:
        if info.error:
            lines.append(f"{info.path}: {info.error}")
            continue
        lines.append(f"{info.path}  {info.name!r}  id {info.vendor:04x}:{info.product:04x}  phys {info.phys or '-'}")
        for link in info.by_id:
            lines.append(f"    by-id {link}")
        rel = " ".join(r for r in info.rel if not r.endswith("_HI_RES")) or "no wheels"
        leds = " ".join(led.removeprefix("LED_") for led in info.leds) or "none"
        lines.append(f"    {info.keys} keys, {rel}, LEDs: {leds}")
    denied = [info for info in infos if info.error == "permission denied"]
    code = 0
    if denied:
        lines.append("")
        lines.append(f"{len(denied)} of {len(infos)} event nodes are not readable by {_user()}: " + group_hint() + ".")
        code = 1 if len(denied) == len(infos) else 0
    return "\n".join(lines) + "\n", code


def print_devices(out: TextIO, root: str = INPUT_DIR, open_device: Callable[[str], Any] = evdev.InputDevice) -> int:
    """Print the device list to out; return the exit code for ``octopanel devices``."""
    text, code = format_devices(list_devices(root, open_device), root)
    out.write(text)
    return code
