"""What the printer received: G-code lines read back from OctoPrint's serial.log.

Needs `serial.log: true` and a serial.log that never rotates (VirtualPrinter sees to both).
"""

import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

POLL_S = 0.02

# Lines OctoPrint sends on its own, never because of an action: M105 temperature polls (rare: the
# Virtual Printer autoreports), M110 line-number resets (connect, job start), and the M155/M27
# autoreport setup after the handshake. M115, M21 and M20 (handshake) are kept: they show what connect does.
NOISE = frozenset({"M105", "M110", "M155", "M27"})
SEND_LINE = re.compile(r"^\S+ \S+ - Send: (.*)$")
NUMBERED = re.compile(r"^N\d+ +(.*?)\*\d+$")


def _matches(expected: "str | re.Pattern[str]", line: str) -> bool:
    return expected.fullmatch(line) is not None if isinstance(expected, re.Pattern) else expected == line


def _in_order(expected: "Iterable[str | re.Pattern[str]]", sent: list[str]) -> bool:
    """True if every expected item (a str, or a compiled regex to fullmatch) appears in sent, in order."""
    it = iter(sent)
    return all(any(_matches(e, line) for line in it) for e in expected)


class SerialLog:
    """Reads one serial.log; marks are byte offsets into it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """The log's current size in bytes: the point from which sent_since() and the waits look."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def sent_since(self, mark: int, raw: bool = False) -> list[str]:
        """G-code lines sent to the printer after mark, without line numbers, checksums and NOISE."""
        try:
            with open(self.path, "rb") as f:
                f.seek(mark)
                data = f.read()
        except FileNotFoundError:
            return []
        sent = []
        for line in data.decode("utf-8", "replace").split("\n")[:-1]:  # [:-1]: a line still being written
            match = SEND_LINE.match(line)
            if match is None:
                continue
            code = match.group(1).strip()
            numbered = NUMBERED.match(code)
            code = numbered.group(1) if numbered else code
            if raw or code.split(" ", 1)[0] not in NOISE:
                sent.append(code)
        return sent

    def wait_sent(
        self, mark: int, expected: "Iterable[str | re.Pattern[str]] | Callable[[list[str]], bool]", timeout: float = 5
    ) -> list[str]:
        """Poll until expected (a predicate on the list, or lines/regexes in order) was sent; return all sent."""
        check = expected if callable(expected) else lambda sent: _in_order(expected, sent)
        deadline = time.monotonic() + timeout
        while True:
            sent = self.sent_since(mark)
            if check(sent):
                return sent
            if time.monotonic() > deadline:
                raise TimeoutError(f"after {timeout} s the printer received {sent}, expected {expected}")
            time.sleep(POLL_S)

    def settle(self, mark: int, quiet: float = 0.2, timeout: float = 3) -> list[str]:
        """Wait until nothing new was sent for quiet seconds (or timeout); return what was sent since mark.

        For when the expected lines are unknown, e.g. to show what a command sent or that it sent nothing."""
        deadline = time.monotonic() + timeout
        sent, since = self.sent_since(mark), time.monotonic()
        while time.monotonic() - since < quiet and time.monotonic() < deadline:
            time.sleep(POLL_S)
            now = self.sent_since(mark)
            if now != sent:
                sent, since = now, time.monotonic()
        return sent
