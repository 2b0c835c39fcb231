"""The one G-code word parser: reads a line the way Marlin's gcode/parser.cpp does (or, for Klipper's own
commands, the way klippy/gcode.py does), or refuses it.

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

Klipper's extended commands (`SET_FAN_SPEED FAN=part SPEED=0.5`, a printer.cfg macro): Klipper takes the
command from the upper-cased line split at runs of letters and `_` (GCodeDispatch.args_r), so a digit inside a
name ends it (`MY_2ND_MACRO` reads as `MY_2`); it then reads the rest as shell-style `KEY=value` words, keys
upper-cased, `#` and `;` starting a comment. Only the unambiguous subset is read: a name of letters and `_`
(digits only at its end, and not second, where Klipper would take it for a traditional code), then
`KEY=value` words whose value is plain text, or text in double quotes, with none of `"'\\#;*(){}`.
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
_EXTENDED_START = re.compile(r"[A-Za-z_][A-Za-z_]")
_EXTENDED = re.compile(r"([A-Za-z_]{2,}[0-9]*)(?= |$)")
_NOT_IN_VALUES = "\"'\\#;*(){}"  # quoting, escapes, comments, a checksum, Jinja: each read differently somewhere
_EXTENDED_WORD = re.compile(
    rf'([A-Za-z_][A-Za-z0-9_]*)=("[^{re.escape(_NOT_IN_VALUES)}]*"|[^\s{re.escape(_NOT_IN_VALUES)}]*)(?= |$)'
)


class GcodeError(ValueError):
    """A line Marlin would misread, or that octopanel cannot judge."""


class Command:
    """One parsed line: `code` ('G1', 'M104', 'G29.1'), `words` (letter -> value, None for a bare
    letter), `arg` (the text of M117 and the like, else None) and `text` (the line as given)."""

    __slots__ = ("code", "words", "arg", "text", "params")

    def __init__(
        self,
        code: str,
        words: dict[str, float | None],
        text: str,
        arg: str | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        self.code, self.words, self.text, self.arg = code, words, text, arg
        self.params = params  # a Klipper extended command's KEY -> value (quotes removed); None for G/M/T

    @property
    def base(self) -> str:
        """The code without a subcode ('G29.1' -> 'G29'): firmware built without subcodes runs that."""
        return self.code.split(".", 1)[0]

    def line(self) -> str:
        """The line to send: exactly what was judged, without comments, line number or checksum."""
        if self.params is not None:
            quoted = (f'{k}="{v}"' if " " in v or not v else f"{k}={v}" for k, v in self.params.items())
            return " ".join([self.code, *quoted])
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


def names_klipper_command(line: str) -> bool:
    """Whether a line starts as a Klipper extended command does (a name, not G/M/T and a number)."""
    return bool(_EXTENDED_START.match(line.lstrip(" ")))


def extended(line: str) -> Command | None:
    """A Klipper extended command read as klippy/gcode.py reads it, or None if the line is not one."""
    text = line.strip(" ")
    if not names_klipper_command(text):
        return None  # G1, M104, T0, N10 ...: Marlin's reading
    name = _EXTENDED.match(text)
    if not name:
        raise GcodeError(
            f"'{line}': a Klipper command's name is letters and _, with digits only at its end (Klipper reads "
            f"a name with a digit inside differently), got '{text[:16]}'"
        )
    code, params, at = name.group(1).upper(), {}, name.end()
    while at < len(text):
        if text[at] != " ":
            raise GcodeError(f"'{line}': expected a space before the next KEY=value word at '{text[at : at + 12]}'")
        at += 1
        if text[at : at + 1] in (" ", ""):
            continue
        word = _EXTENDED_WORD.match(text, at)
        if not word:
            raise GcodeError(
                f"'{line}': {code} takes KEY=value words (a value plain or in double quotes, without "
                f"quotes, backslashes, #, ;, *, parentheses or braces), got '{text[at : at + 16]}'"
            )
        key = word.group(1).upper()
        if key in params:
            raise GcodeError(f"'{line}': {key} appears twice")
        params[key] = word.group(2).strip('"') if word.group(2).startswith('"') else word.group(2)
        at = word.end()
    return Command(code, {}, line, params=params)


def parse(line: object) -> Command | None:
    """The Command a line holds, or None for an empty or comment-only line; GcodeError if unreadable."""
    found = extended(str(line).split(";", 1)[0])
    if found is not None:
        return found
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
