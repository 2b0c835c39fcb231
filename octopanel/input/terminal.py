"""What a terminal sends for keypad keys (plain bytes, CSI and SS3 sequences) -> evdev key codes.

A numeric keypad in a terminal arrives in one of three forms: NumLock on in normal mode gives plain
characters (``8``, ``+``, ``\\r``); with the application keypad mode on (DECKPAM, ``ESC =``, as the terminal
keypad sets it) xterm, tmux and most others send SS3 sequences (``ESC O x`` for 8, ``ESC O M`` for Enter);
NumLock off gives the cursor keys (``ESC [ A`` or ``ESC O A``, ``ESC [ 5 ~`` ...). Each form decodes to the
code a USB keypad sends for that key in that state, so the shipped keymap's bindings apply as they are.
"""

from dataclasses import dataclass, field

from evdev import ecodes as e

ESC = 0x1B
# An ESC with nothing after it within this long is the Escape key itself, not the start of a sequence:
# a terminal writes a whole sequence at once, so its bytes come in one read or very nearly.
ESC_TIMEOUT_S = 0.05
QUIT_BYTES = frozenset({ord("q"), ord("Q"), 0x03, 0x04})  # q, Ctrl-C, Ctrl-D (raw mode: no signals)

PLAIN = {
    **{ord(str(d)): e.ecodes[f"KEY_KP{d}"] for d in range(10)},
    ord("+"): e.KEY_KPPLUS,
    ord("-"): e.KEY_KPMINUS,
    ord("*"): e.KEY_KPASTERISK,
    ord("/"): e.KEY_KPSLASH,
    ord("."): e.KEY_KPDOT,
    ord(","): e.KEY_KPDOT,  # the keypad's decimal key in many European layouts
    ord("\r"): e.KEY_KPENTER,
    ord("\n"): e.KEY_KPENTER,
    0x7F: e.KEY_BACKSPACE,  # what most terminals send for Backspace
    0x08: e.KEY_BACKSPACE,  # ... and Ctrl-H, what the others send
}
# SS3 (ESC O <final>): the application keypad (DECKPAM) and application cursor keys (DECCKM).
SS3 = {
    **{ord("p") + d: e.ecodes[f"KEY_KP{d}"] for d in range(10)},  # ESC O p .. ESC O y
    ord("n"): e.KEY_KPDOT,
    ord("l"): e.KEY_KPDOT,  # VT220's keypad comma, where the key is labelled ','
    ord("M"): e.KEY_KPENTER,
    ord("k"): e.KEY_KPPLUS,
    ord("m"): e.KEY_KPMINUS,
    ord("j"): e.KEY_KPASTERISK,
    ord("o"): e.KEY_KPSLASH,
    ord("A"): e.KEY_UP,
    ord("B"): e.KEY_DOWN,
    ord("C"): e.KEY_RIGHT,
    ord("D"): e.KEY_LEFT,
    ord("H"): e.KEY_HOME,
    ord("F"): e.KEY_END,
    ord("E"): e.KEY_KP5,  # the keypad's 5 with NumLock off (KP_Begin)
}
# CSI with a letter final (ESC [ A, or ESC [ 1 ; 5 A with modifiers, which are ignored).
CSI_FINAL = {
    ord("A"): e.KEY_UP,
    ord("B"): e.KEY_DOWN,
    ord("C"): e.KEY_RIGHT,
    ord("D"): e.KEY_LEFT,
    ord("H"): e.KEY_HOME,
    ord("F"): e.KEY_END,
    ord("E"): e.KEY_KP5,  # xterm's KP_Begin
    ord("G"): e.KEY_KP5,  # the Linux console's KP_Begin
}
# CSI <number> ~ (VT220 editing keys; 1/4 are Home/End in tmux and rxvt, 7/8 in rxvt too).
CSI_TILDE = {
    1: e.KEY_HOME,
    7: e.KEY_HOME,
    2: e.KEY_INSERT,
    3: e.KEY_DELETE,
    4: e.KEY_END,
    8: e.KEY_END,
    5: e.KEY_PAGEUP,
    6: e.KEY_PAGEDOWN,
}


@dataclass
class TerminalDecoder:
    """Feed it the bytes read from the terminal; it returns the key codes they stand for, in order.

    A sequence split across reads is completed by the next read; one still incomplete ESC_TIMEOUT_S after
    its first byte (``flush``) is dropped, as is any sequence or byte that is no key of a keypad."""

    quit: bool = False  # set once q, Ctrl-C or Ctrl-D was read; nothing after it is decoded
    _buffer: bytearray = field(default_factory=bytearray)
    _since: float | None = None

    def feed(self, data: bytes, now: float) -> list[int]:
        self._buffer += data
        codes: list[int] = []
        while self._buffer and not self.quit:
            used, code = self._one(bytes(self._buffer))
            if used == 0:  # an incomplete sequence: wait for the rest of it
                self._since = now if self._since is None else self._since
                return codes
            del self._buffer[:used]
            self._since = None
            if code is not None:
                codes.append(code)
        if self.quit:
            self._buffer.clear()
        return codes

    def deadline(self) -> float | None:
        """When an incomplete sequence is given up (call flush then), or None."""
        return None if self._since is None else self._since + ESC_TIMEOUT_S

    def flush(self, now: float) -> None:
        """Drop an incomplete sequence that waited ESC_TIMEOUT_S (a lone Escape key, or garbage)."""
        if self._since is not None and now >= self._since + ESC_TIMEOUT_S:
            self._buffer.clear()
            self._since = None

    def _one(self, data: bytes) -> tuple[int, int | None]:
        """(bytes used, key code or None) for the sequence at the start of data; (0, None) if incomplete."""
        first = data[0]
        if first != ESC:
            if first in QUIT_BYTES:
                self.quit = True
            return 1, PLAIN.get(first)
        if len(data) < 2:
            return 0, None
        if data[1] == ord("O"):
            if len(data) < 3:
                return 0, None
            return 3, SS3.get(data[2])
        if data[1] != ord("["):
            return 1, None  # ESC then something else (Alt+key): skip the ESC, read the rest as it comes
        for end in range(2, len(data)):
            byte = data[end]
            if 0x40 <= byte <= 0x7E:  # the final byte of a CSI sequence
                params = data[2:end].decode("ascii", "replace")
                if byte == ord("~"):
                    number = params.split(";")[0]
                    return end + 1, CSI_TILDE.get(int(number)) if number.isdigit() else None
                return end + 1, CSI_FINAL.get(byte)
            if not 0x20 <= byte <= 0x3F:  # not a parameter or intermediate byte: not a CSI sequence after all
                return end, None
        return 0, None
