"""What the chart says on each key: a keymap's bindings as short entries, by gesture, printer state and layer."""

from dataclasses import dataclass

from octopanel.actions.registry import ANY
from octopanel.chart.layouts import Element
from octopanel.panel.keymap import GESTURES, Keymap
from octopanel.panel.keymap_checks import WHEN

# A plain press has no mark; a repeat that repeats the press is a mark after the line.
GESTURE_MARK = {"press": "", "release": "release", "hold": "hold", "repeat": "↻", "double": "2×"}
REPEATS = "↻"
LEGEND = (
    "hold: long press · 2×: double press · ↻: repeats while held · turn: per detent · "
    "idle, printing, paused, else: only in that printer state"
)


@dataclass(frozen=True)
class Entry:
    """One line of meaning: when it applies (printer states; layer and gesture as `mark`) and the action line."""

    when: str
    mark: str
    text: str

    @property
    def prefix(self) -> str:
        words = [w for w in (self.when, self.mark) if w]
        return " ".join(words) + ":" if words else ""


def when_words(states: frozenset) -> str:
    """The `when:` words that make up a set of printer states ("" for any state)."""
    if states == ANY:
        return ""
    return "/".join(name for name, group in WHEN.items() if group != ANY and group <= states)


def mark(layer: str, gesture_mark: str) -> str:
    if layer:
        return f"{layer}+{gesture_mark}" if gesture_mark else layer
    return gesture_mark


def key_entries(km: Keymap, layer: str, code: str, press_mark: str = "") -> list[Entry]:
    """The entries of one key in one layer, in the keymap's order; a repeat equal to its press is a mark."""
    found = []
    presses = km.bindings.get((layer, code, "press"), [])
    repeats = km.bindings.get((layer, code, "repeat"), [])
    for order, gesture in enumerate(GESTURES):
        for binding in km.bindings.get((layer, code, gesture), ()):
            others = presses if gesture == "repeat" else repeats
            same = [p for p in others if (p.line, p.when) == (binding.line, binding.when)]
            if gesture == "repeat" and same:
                continue
            text = binding.line + (f" {REPEATS}" if gesture == "press" and same else "")
            gesture_mark = press_mark if gesture == "press" else GESTURE_MARK[gesture]
            when = when_words(binding.when)
            if not when and any(other.when != ANY for other in km.bindings[(layer, code, gesture)]):
                when = "else"  # the first binding whose when: fits runs: this one is what is left
            entry = Entry(when, mark(layer, gesture_mark), text)
            found.append((binding.line_no, order, entry))
    entries = [entry for _line, _order, entry in sorted(found, key=lambda f: (f[0], f[1]))]
    if not layer and code in km.shifts:
        entries.insert(0, Entry("", "held", f"layer {km.shifts[code]}"))
    return entries


def grouped(entries: list[Entry]) -> list[Entry]:
    """Two or more entries in a row for the same states under one heading ("idle/paused:")."""
    out: list[Entry] = []
    i = 0
    while i < len(entries):
        j = i
        while j < len(entries) and entries[j].when == entries[i].when:
            j += 1
        if entries[i].when and j - i > 1:
            out.append(Entry(entries[i].when, "", ""))
            out += [Entry("", e.mark, e.text) for e in entries[i:j]]
        else:
            out += entries[i:j]
        i = j
    return out


def rotary_names(km: Keymap, element: Element) -> list[str]:
    """The rotary bindings an element carries: a source it names, or a knob whose key pair it has."""
    return [
        name
        for name in km.rotary
        if name in element.codes or (name in km.key_pairs and set(km.key_pairs[name]) <= set(element.codes))
    ]


def element_entries(km: Keymap, element: Element) -> list[Entry]:
    """Everything bound to an element's codes in every layer, and its rotary bindings. A second code that
    does the same as the first (NumLock off) is said once; one that differs is named."""
    layers = [""] + sorted(set(km.shifts.values()))
    press_mark = "" if element.shape == "key" else "push"  # a knob's key is its push
    entries: list[Entry] = []
    first: list[Entry] | None = None
    for code in element.codes:
        mine = [e for layer in layers for e in key_entries(km, layer, code, press_mark)]
        if not mine:
            continue
        if first is None:
            first = mine
            entries += mine
        elif mine != first:
            name = short_name(code)
            entries += [Entry(e.when, f"{name} {e.mark}".strip(), e.text) for e in mine]
    for name in rotary_names(km, element):
        for binding in km.rotary[name]:
            entries.append(Entry(when_words(binding.when), "turn", binding.line))
    return grouped(entries)


def bound_codes(km: Keymap) -> list[str]:
    """Every key code with a binding or a layer, in the keymap's order."""
    codes = {code: None for (_layer, code, _gesture) in km.bindings}
    codes.update({code: None for code in km.shifts})
    return list(codes)


def short_name(code: str) -> str:
    """A key's name as a legend: KEY_F13 -> F13; BTN_4, REL_DIAL stay."""
    return code.removeprefix("KEY_")


def unplaced(km: Keymap, elements: list[Element]) -> list[Element]:
    """Bound keys and rotary bindings no element of the layout carries, as elements to put in a grid."""
    placed = {code for e in elements for code in e.codes}
    extra = [Element(short_name(c), 0, 0, 1, 1, (c,)) for c in bound_codes(km) if c not in placed]
    knobs = {name for e in elements for name in rotary_names(km, e)}
    for name in km.rotary:
        if name not in knobs:
            pair = km.key_pairs.get(name, ())
            extra = [e for e in extra if e.codes[0] not in pair]
            extra.append(Element(name, 0, 0, 1, 1, (name, *pair), "knob"))
    return extra
