"""Fitting entries into a box: wrap at spaces, shrink down to a legible floor, else cut and refer to a note.

Text is set in a monospaced font, so its width is known without font metrics: nothing overflows unseen."""

import math
from dataclasses import dataclass

from octopanel.chart.labels import Entry

MONO_EM = 0.61  # advance of DejaVu Sans Mono (0.602 em) and Liberation Mono (0.600 em), rounded up
LINE_EM = 1.2  # line pitch
MAX_MM = 2.6  # font sizes (em in mm) a label is set at: the largest that fits, down to...
MIN_MM = 1.5  # ...about 4.3 pt, still legible on a printed key
STEP_MM = 0.1

Line = list[tuple[str, bool]]  # runs of (text, is a prefix)


@dataclass
class Fitted:
    """Lines to draw at `size` mm; `shown` of the entries fitted (the rest go to a note)."""

    size: float
    lines: list[Line]
    shown: int


def max_chars(width_mm: float, size_mm: float) -> int:
    return int(width_mm / (size_mm * MONO_EM) + 1e-9)


def words_of(entry: Entry) -> list[tuple[str, bool, bool]]:
    """(word, is a prefix, glued to the one before): states may break after their '/' ("printing/" "paused:")."""
    out = []
    for word in entry.prefix.split():
        parts = word.replace("/", "/ ").split()
        out += [(part, True, i > 0) for i, part in enumerate(parts)]
    return out + [(w, False, False) for w in entry.text.split()]


def wrap(entry: Entry, chars: int) -> list[Line]:
    """An entry as lines of at most `chars` characters: broken at spaces, a longer word cut into pieces."""
    lines: list[list[tuple[str, bool, bool]]] = []
    current: list[tuple[str, bool, bool]] = []
    length = 0
    for word, is_prefix, glued in words_of(entry):
        pieces = [word[i : i + chars] for i in range(0, len(word), chars)] or [word]
        for n, piece in enumerate(pieces):
            glue = glued or n > 0
            if current and length + (0 if glue else 1) + len(piece) > chars:
                lines.append(current)
                current, length = [], 0
            length += len(piece) + (0 if glue or not current else 1)
            current.append((piece, is_prefix, glue))
    if current:
        lines.append(current)
    return [runs(line) for line in lines]


def runs(words: list[tuple[str, bool, bool]]) -> Line:
    """Words joined into runs of one style, a space kept at the end of a run."""
    out: Line = []
    for i, (word, is_prefix, glued) in enumerate(words):
        sep = "" if glued or i == 0 else " "
        if out and out[-1][1] == is_prefix:
            out[-1] = (out[-1][0] + sep + word, is_prefix)
        else:
            if out:
                out[-1] = (out[-1][0] + sep, out[-1][1])
            out.append((word, is_prefix))
    return out


def line_count(height_mm: float, size_mm: float) -> int:
    return int(height_mm / (size_mm * LINE_EM) + 1e-9)


def fit(entries: list[Entry], width_mm: float, height_mm: float, note: str = "") -> Fitted:
    """The largest size at which every entry fits; else, at MIN_MM, the entries that fit whole and a last
    line `note` (e.g. "…note 2") for the rest."""
    longest = max((len(w) for e in entries for w, _p, _g in words_of(e)), default=0)
    for whole_words in (True, False):  # a word cut in two is harder to read than a smaller size
        size = MAX_MM
        while size >= MIN_MM - 1e-9:
            chars = max_chars(width_mm, size)
            if chars >= 4 and (chars >= longest or not whole_words):
                lines = [line for entry in entries for line in wrap(entry, chars)]
                if len(lines) <= line_count(height_mm, size):
                    return Fitted(size, lines, len(entries))
            size = round(size - STEP_MM, 2)
    chars = max(1, max_chars(width_mm, MIN_MM))
    room = max(0, line_count(height_mm, MIN_MM) - 1)
    lines, shown = [], 0
    for entry in entries:  # as many lines as there is room for, the last entry maybe in part
        wrapped = wrap(entry, chars)
        lines += wrapped[: room - len(lines)]
        if len(lines) >= room:
            break
        shown += 1
    lines += wrap(Entry("", "", note), chars) if note else []
    return Fitted(MIN_MM, lines, shown)


def text_width(text: str, size_mm: float) -> float:
    """How wide a monospaced line is."""
    return len(text) * size_mm * MONO_EM


def block_lines(entries: list[Entry], width_mm: float, size_mm: float) -> list[Line]:
    """Entries wrapped to a width at a fixed size (the sheet's notes and legend)."""
    chars = max(4, max_chars(width_mm, size_mm))
    return [line for entry in entries for line in wrap(entry, chars)]


def ceil_mm(value: float) -> float:
    return math.ceil(value * 100) / 100
