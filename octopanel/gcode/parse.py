"""The one G-code word parser: reads a line the way Marlin's gcode/parser.cpp does, or refuses it.

Followed from Marlin (src/gcode/parser.cpp and queue.cpp): spaces before the command; an optional line
number `N<signed number>`; `;` ends the line; a `*` ends the command (a checksum follows); a space may
separate a letter from its number (`G 28`, `M 104 S300`); lower case reads as upper case
(GCODE_CASE_INSENSITIVE); a value is `+`/`-`, digits and dots (`X.5`, `S+300`), and the next letter
starts the next word (`X0E50` is X0 then E50: Marlin cuts a value at `E`, so there is no exponent);
leading zeros of the code go (`G01` is G1); M16, M23, M28, M30, M117, M118, M810-M819 and M928 take
the rest of the line as text.

Deviations, all towards refusing: `( )` is always a comment (Marlin's PAREN_COMMENTS is optional; a
caller sends `Command.line()`, which has no comment, so no firmware sees the difference); a checksum
is dropped, not verified (OctoPrint adds its own line number and checksum); `N10G28` (a line number
run into the command, which Marlin versions read differently), a repeated parameter letter (Marlin
keeps the first or the last depending on FASTER_GCODE_PARSER), a value such as `1-2` or `1.2.3`
(strtof reads a prefix), a line starting with anything but G, M or T (GCODE_MOTION_MODES would read
`X5` as a move), `T?`/`Tx`/`Tc`, tabs and other characters outside words are GcodeError. M0/M1 text
(`M0 S5 Press a key`) is not read as text: it is refused as garbage.
"""

import re

from octopanel.values import gnum

STRING_ARG = frozenset({"M16", "M23", "M28", "M30", "M117", "M118", "M928"} | {f"M{n}" for n in range(810, 820)})
MAX_CODE = 9999  # Marlin keeps the code in a uint16_t: G65564 would wrap to G28

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_VALUE_CHARS = frozenset("0123456789.+-")
_LINE_NUMBER = re.compile(r"N[+-]?\d+(?: +|$)", re.IGNORECASE)
_COMMAND = re.compile(r"([GMT]) *(\d+)(?:\.(\d+))?", re.IGNORECASE)
_CHECKSUM = re.compile(r"\d+ *")


class GcodeError(ValueError):
    """A line Marlin would misread, or that octopanel cannot judge."""


class Command:
    """One parsed line: `code` ('G1', 'M104', 'G29.1'), `words` (letter -> value, None for a bare
    letter), `arg` (the text of M117 and the like, else None) and `text` (the line as given)."""

    __slots__ = ("code", "words", "arg", "text")

    def __init__(self, code: str, words: dict[str, float | None], text: str, arg: str | None = None) -> None:
        self.code, self.words, self.text, self.arg = code, words, text, arg

    @property
    def base(self) -> str:
        """The code without a subcode ('G29.1' -> 'G29'): firmware built without subcodes runs that."""
        return self.code.split(".", 1)[0]

    def line(self) -> str:
        """The line to send: exactly what was judged, without comments, line number or checksum."""
        if self.arg is not None:
            return f"{self.code} {self.arg}" if self.arg else self.code
        parts = [self.code] + [
            letter if value is None else f"{letter}{gnum(value)}" for letter, value in self.words.items()
        ]
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"Command({self.code!r}, {self.words!r}, arg={self.arg!r})"


def strip_comments(line: str) -> str:
    """The line without `;` and `( )` comments, as Marlin's queue keeps it."""
    kept: list[str] = []
    depth = False
    for char in line:
        if depth:
            depth = char != ")"
        elif char == ";":
            break
        elif char == "(":
            depth = True
        else:
            kept.append(char)
    return "".join(kept)


def parse(line: object) -> Command | None:
    """The Command a line holds, or None for an empty or comment-only line; GcodeError if unreadable."""
    text = strip_comments(str(line)).lstrip(" ")
    prefix = _LINE_NUMBER.match(text)
    if prefix:
        text = text[prefix.end() :]
    elif text[:1] in ("N", "n") and text[1:2] in tuple("+-0123456789"):
        raise GcodeError(f"'{line}': a line number must be followed by a space")
    text, star, checksum = text.partition("*")
    if star and not _CHECKSUM.fullmatch(checksum):
        raise GcodeError(f"'{line}': '*' must end the line with a checksum (digits), got '*{checksum}'")
    text = text.rstrip(" ")
    if not text:
        return None
    match = _COMMAND.match(text)
    if not match:
        raise GcodeError(f"'{line}': a G-code line starts with G, M or T and a number, got '{text[:12]}'")
    number = int(match.group(2))
    if number > MAX_CODE:
        raise GcodeError(f"'{line}': code number {number} is out of range (the firmware would wrap it)")
    code = f"{match.group(1).upper()}{number}" + (f".{int(match.group(3))}" if match.group(3) else "")
    rest = text[match.end() :]
    if code in STRING_ARG:
        if rest and not rest.startswith(" "):
            raise GcodeError(f"'{line}': {code} needs a space before its text")
        return Command(code, {}, str(line), arg=rest.strip(" "))
    return Command(code, words(rest.upper(), line), str(line))


def words(rest: str, line: object) -> dict[str, float | None]:
    """Parameter letter -> value, read from the rest of a (upper-cased) line as Marlin does."""
    found: dict[str, float | None] = {}
    at, end = 0, len(rest)
    while True:
        while at < end and rest[at] == " ":
            at += 1
        if at == end:
            return found
        letter = rest[at]
        if not "A" <= letter <= "Z":
            raise GcodeError(f"'{line}': expected a parameter letter, got '{letter}'")
        if letter in found:
            raise GcodeError(f"'{line}': parameter {letter} appears twice (firmware versions differ on which wins)")
        at += 1
        while at < end and rest[at] == " ":
            at += 1
        start = at
        while at < end and rest[at] in _VALUE_CHARS:
            at += 1
        value = rest[start:at]
        if value and not _NUMBER.fullmatch(value):
            raise GcodeError(f"'{line}': {letter}{value} is not a number the firmware reads as written")
        if at < end and rest[at] != " " and not "A" <= rest[at] <= "Z":
            raise GcodeError(f"'{line}': unexpected '{rest[at]}' after {letter}{value}")
        found[letter] = float(value) if value else None
