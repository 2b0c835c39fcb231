"""Where each key sits on the devices the chart knows: one table per layout, chosen by the keymap's devices."""

import math
from dataclasses import dataclass

from octopanel import values
from octopanel.errors import UsageError
from octopanel.input.devicespec import DeviceSpec
from octopanel.input.discovery import DeviceInfo

KEY_PITCH_MM = 19.05  # the standard key spacing (0.75 in) of keyboards and keypads


@dataclass(frozen=True)
class Element:
    """One key, knob or ring: its legend, its box in layout units, and the codes (keys, rotary sources) it sends."""

    legend: str
    x: float
    y: float
    w: float
    h: float
    codes: tuple[str, ...]
    shape: str = "key"  # key (a keycap) | knob (a circle) | ring (a circle around a hole of `hole` units)
    hole: float = 0.0


@dataclass(frozen=True)
class Layout:
    """A device's face: `devices` are (name, vendor:product) of real devices it stands for, to match the
    keymap's device specs against; element positions are in units of `unit_mm`."""

    name: str
    title: str
    unit_mm: float
    devices: tuple[tuple[str, str], ...]
    elements: tuple[Element, ...]

    @property
    def size_mm(self) -> tuple[float, float]:
        if not self.elements:
            return 0.0, 0.0
        return (
            max(e.x + e.w for e in self.elements) * self.unit_mm,
            max(e.y + e.h for e in self.elements) * self.unit_mm,
        )


def _key(legend: str, x: float, y: float, codes: tuple[str, ...], w: float = 1, h: float = 1) -> Element:
    return Element(legend, x, y, w, h, codes)


# The 17-key keypad; each key sends its KP code with NumLock on and the second code with NumLock off.
NUMPAD = Layout(
    "numpad",
    "17-key numeric keypad",
    KEY_PITCH_MM,
    (("USB Keypad", ""), ("USB Numeric Keypad", ""), ("Wireless Numeric Keypad", "")),
    (
        _key("Num", 0, 0, ("KEY_NUMLOCK",)),
        _key("/", 1, 0, ("KEY_KPSLASH",)),
        _key("*", 2, 0, ("KEY_KPASTERISK",)),
        _key("-", 3, 0, ("KEY_KPMINUS",)),
        _key("7 Home", 0, 1, ("KEY_KP7", "KEY_HOME")),
        _key("8 ↑", 1, 1, ("KEY_KP8", "KEY_UP")),
        _key("9 PgUp", 2, 1, ("KEY_KP9", "KEY_PAGEUP")),
        _key("+", 3, 1, ("KEY_KPPLUS",), h=2),
        _key("4 ←", 0, 2, ("KEY_KP4", "KEY_LEFT")),
        _key("5", 1, 2, ("KEY_KP5",)),
        _key("6 →", 2, 2, ("KEY_KP6", "KEY_RIGHT")),
        _key("1 End", 0, 3, ("KEY_KP1", "KEY_END")),
        _key("2 ↓", 1, 3, ("KEY_KP2", "KEY_DOWN")),
        _key("3 PgDn", 2, 3, ("KEY_KP3", "KEY_PAGEDOWN")),
        _key("Enter", 3, 3, ("KEY_KPENTER",), h=2),
        _key("0 Ins", 0, 4, ("KEY_KP0", "KEY_INSERT"), w=2),
        _key(". Del", 2, 4, ("KEY_KPDOT", "KEY_DELETE")),
    ),
)

# The common CH57x pad: three keys in a row and a knob (turned: a key pair; pushed: KEY_MUTE) beside them.
MACROPAD = Layout(
    "macropad",
    "3-key macro pad with a knob",
    KEY_PITCH_MM,
    (("CH57x USB Macro Pad", "1189:8890"),),
    (
        _key("1", 0, 0, ("KEY_1",)),
        _key("2", 1, 0, ("KEY_2",)),
        _key("3", 2, 0, ("KEY_3",)),
        Element("knob", 3, 0, 1, 1, ("KEY_VOLUMEUP", "KEY_VOLUMEDOWN", "KEY_MUTE"), "knob"),
    ),
)

# Contour ShuttleXpress, in mm: five buttons on an arc over the shuttle ring (REL_WHEEL) around the jog
# wheel (REL_DIAL). Sizes and places are approximate (from the device's proportions, not a drawing).
SHUTTLEXPRESS = Layout(
    "shuttlexpress",
    "Contour ShuttleXpress",
    1.0,
    (("Contour Design ShuttleXpress", "0b33:0020"),),
    (
        _key("1", 0, 22, ("BTN_4",), w=20, h=16),
        _key("2", 21, 7, ("BTN_5",), w=20, h=16),
        _key("3", 42, 0, ("BTN_6",), w=20, h=16),
        _key("4", 63, 7, ("BTN_7",), w=20, h=16),
        _key("5", 84, 22, ("BTN_8",), w=20, h=16),
        Element("ring", 22, 26, 60, 60, ("REL_WHEEL", "REL_HWHEEL"), "ring", hole=32),
        Element("jog", 37, 41, 30, 30, ("REL_DIAL",), "knob"),
    ),
)

GRID = Layout("grid", "keys", KEY_PITCH_MM, (), ())
LAYOUTS = {layout.name: layout for layout in (NUMPAD, MACROPAD, SHUTTLEXPRESS, GRID)}


def _info(name: str, ident: str) -> DeviceInfo:
    vendor, _, product = ident.partition(":")
    return DeviceInfo(path="", name=name, vendor=int(vendor or "0", 16), product=int(product or "0", 16))


def choose(devices: list[DeviceSpec], name: str | None = None) -> tuple[Layout, str]:
    """The layout named, else the first whose devices the keymap's `devices:` would pick up, else GRID;
    with a line saying why."""
    if name is not None:
        if name not in LAYOUTS:
            raise UsageError(
                f"--layout: unknown layout '{name}'{values.suggest(name, LAYOUTS)}; use {', '.join(LAYOUTS)}"
            )
        return LAYOUTS[name], "--layout"
    for index, spec in enumerate(devices):
        for layout in LAYOUTS.values():
            if any(spec.matches(_info(*device)) for device in layout.devices):
                return layout, f"devices[{index}] ({spec})"
    return GRID, "no device in devices: is one the chart knows"


def in_mm(layout: Layout) -> list[Element]:
    """The layout's elements with their boxes in mm."""
    u = layout.unit_mm
    return [
        Element(e.legend, e.x * u, e.y * u, e.w * u, e.h * u, e.codes, e.shape, e.hole * u) for e in layout.elements
    ]


def grid(elements: list[Element], width_mm: float, top_mm: float) -> list[Element]:
    """Elements in one-key cells (19.05 mm), in rows as wide as `width_mm` (none: about square), from `top_mm`."""
    if width_mm >= KEY_PITCH_MM:
        columns = int(width_mm // KEY_PITCH_MM)
    else:
        columns = max(1, min(6, math.ceil(math.sqrt(len(elements)))))
    p = KEY_PITCH_MM
    return [
        Element(e.legend, i % columns * p, top_mm + i // columns * p, p, p, e.codes, e.shape)
        for i, e in enumerate(elements)
    ]
