"""The terminal keypad's two pure parts: bytes -> keypad key codes, and autorepeat -> key downs and ups,
the latter fed through the daemon's own gesture engine with the shipped keymap's timings."""

import pytest
from evdev import InputEvent
from evdev import ecodes as e

from octopanel.actions import build_registry
from octopanel.input.autorepeat import (
    AUTOREPEAT_INTERVAL_S,
    LAG_S,
    REPEAT_GAP_S,
    TAP_RELEASE_S,
    TAP_S,
    KeyTracker,
)
from octopanel.input.keynames import key_name
from octopanel.input.terminal import ESC_TIMEOUT_S, PLAIN, SS3, TerminalDecoder
from octopanel.panel import keymap as keymap_mod
from octopanel.panel.gestures import GestureEngine, KeyTiming
from octopanel.settings import load as load_settings

SHIPPED = keymap_mod.load("etc/keymap.yaml", build_registry(), load_settings({}, None).limits)


def decode(*chunks, gap=0.0):
    decoder, codes, now = TerminalDecoder(), [], 0.0
    for chunk in chunks:
        codes += decoder.feed(chunk, now)
        now += gap
        decoder.flush(now)
    return [key_name(c) for c in codes], decoder


@pytest.mark.parametrize(
    "data, keys",
    [
        (b"8", ["KEY_KP8"]),
        (b"0123456789", [f"KEY_KP{d}" for d in range(10)]),
        (
            b"+-*/.,\r",
            ["KEY_KPPLUS", "KEY_KPMINUS", "KEY_KPASTERISK", "KEY_KPSLASH", "KEY_KPDOT", "KEY_KPDOT", "KEY_KPENTER"],
        ),
        (b"\x7f\x08", ["KEY_BACKSPACE", "KEY_BACKSPACE"]),
        # application keypad mode (ESC =): xterm's and tmux's SS3 sequences
        (
            b"\x1bOx\x1bOp\x1bOy\x1bOM\x1bOk\x1bOm\x1bOj\x1bOo\x1bOn",
            [
                "KEY_KP8",
                "KEY_KP0",
                "KEY_KP9",
                "KEY_KPENTER",
                "KEY_KPPLUS",
                "KEY_KPMINUS",
                "KEY_KPASTERISK",
                "KEY_KPSLASH",
                "KEY_KPDOT",
            ],
        ),  # fmt: skip
        # NumLock off: the cursor keys, in normal and application cursor mode, with modifiers ignored
        (
            b"\x1b[A\x1b[B\x1b[C\x1b[D\x1bOA\x1b[1;5A",
            ["KEY_UP", "KEY_DOWN", "KEY_RIGHT", "KEY_LEFT", "KEY_UP", "KEY_UP"],
        ),
        (
            b"\x1b[H\x1b[F\x1b[1~\x1b[4~\x1b[2~\x1b[3~\x1b[5~\x1b[6~",
            ["KEY_HOME", "KEY_END", "KEY_HOME", "KEY_END", "KEY_INSERT", "KEY_DELETE", "KEY_PAGEUP", "KEY_PAGEDOWN"],
        ),  # fmt: skip
        (b"\x1b[E\x1bOE\x1b[G", ["KEY_KP5", "KEY_KP5", "KEY_KP5"]),  # 5 with NumLock off (KP_Begin)
        (b"x\x1b[200~\x1b[15~\x1bOPa8", ["KEY_KP8"]),  # not keypad keys: skipped, the rest still read
    ],
)
def test_terminal_bytes_decode_to_keypad_codes(data, keys):
    assert decode(data)[0] == keys


def test_a_sequence_split_across_reads_is_completed_and_a_lone_escape_dropped():
    assert decode(b"\x1b", b"O", b"x", b"\x1b[", b"6~")[0] == ["KEY_KP8", "KEY_PAGEDOWN"]
    keys, decoder = decode(b"\x1b", b"8", gap=ESC_TIMEOUT_S)  # Escape alone, then a key well after it
    assert keys == ["KEY_KP8"] and decoder.deadline() is None


def test_q_and_ctrl_c_quit_and_nothing_after_them_is_read():
    for stop in (b"q", b"\x03", b"\x04"):
        keys, decoder = decode(b"8" + stop + b"6")
        assert keys == ["KEY_KP8"] and decoder.quit


def test_every_keypad_key_the_terminal_sends_is_bound_in_the_shipped_keymap():
    bound = {key for _layer, key, _gesture in SHIPPED.bindings}
    codes = {*PLAIN.values(), *SS3.values()} - {e.KEY_BACKSPACE}  # a 17-key keypad has no Backspace
    assert {key_name(c) for c in codes} - bound == set()


# -- autorepeat -> downs and ups --------------------------------------------------------------------------


def run(tracker, presses, until, step=0.005):
    """Feed byte times {t: code} and collect (stamp, code, value) as due() hands them on, on a 5 ms clock."""
    out, pending, t = [], sorted(presses), 0.0
    while t <= until:
        while pending and pending[0][0] <= t:
            tracker.key(pending.pop(0)[1], t)
        out += tracker.due(t)
        t = round(t + step, 6)
    return out


def test_a_tap_is_a_short_press_handed_on_lag_s_later():
    out = run(KeyTracker(), [(1.0, e.KEY_KP8)], 3.0)
    assert [(c, v) for _s, c, v in out] == [(e.KEY_KP8, 1), (e.KEY_KP8, 0)]
    assert out[0][0] == pytest.approx(1.0 + LAG_S) and out[1][0] == pytest.approx(1.0 + TAP_S + LAG_S)


def test_autorepeat_holds_the_key_down_until_the_repeats_stop():
    repeats = [(1.0, e.KEY_KPDOT)] + [(1.5 + i * 0.04, e.KEY_KPDOT) for i in range(25)]  # 25/s, as X repeats
    out = run(KeyTracker(), repeats, 4.0)
    assert [(c, v) for _s, c, v in out] == [(e.KEY_KPDOT, 1), (e.KEY_KPDOT, 0)]
    last = repeats[-1][0]
    assert out[1][0] == pytest.approx(last + AUTOREPEAT_INTERVAL_S + LAG_S)


def test_a_second_byte_sooner_than_any_autorepeat_is_a_second_press():
    out = run(KeyTracker(), [(1.0, e.KEY_KP0), (1.1, e.KEY_KP0)], 3.0)
    assert [v for _s, _c, v in out] == [1, 0, 1, 0]
    assert out[2][0] - out[0][0] == pytest.approx(0.1)


def test_another_key_releases_the_first_and_close_releases_what_the_daemon_saw_down():
    tracker = KeyTracker()
    out = run(tracker, [(1.0, e.KEY_KP8), (1.2, e.KEY_KP6)], 1.2 + LAG_S + 0.02)  # 6 is down, not yet up
    assert [(c, v) for _s, c, v in out] == [(e.KEY_KP8, 1), (e.KEY_KP8, 0), (e.KEY_KP6, 1)]
    tracker.key(e.KEY_KP4, 2.0)  # not handed on yet: dropped at close, never pressed
    assert tracker.close(2.1) == [(2.1, e.KEY_KP6, 0)] and tracker.due(9.0) == []


def gestures(presses, key, until=4.0):
    """The bound gestures the daemon's gesture engine makes of the tracker's events (shipped keymap timings)."""
    engine = GestureEngine(lambda name: SHIPPED.timings.get(name, KeyTiming()))
    tracker, pending, t, out = KeyTracker(), sorted(presses), 0.0, []
    while t <= until:
        while pending and pending[0][0] <= t:
            tracker.key(pending.pop(0)[1], t)
        for stamp, code, value in tracker.due(t):
            sec, usec = divmod(round(stamp * 1e6), 1_000_000)
            out += engine.feed(InputEvent(sec, usec, e.EV_KEY, code, value), "terminal")
        out += engine.tick(t)
        t = round(t + 0.005, 6)
    bound = SHIPPED.timings[key].gestures
    return [g.kind for g in out if g.key == key and g.kind in bound]


def test_through_the_gesture_engine_a_tap_a_hold_and_a_double_are_what_they_were():
    assert gestures([(1.0, e.KEY_KP8)], "KEY_KP8") == ["press"]  # a jog key tapped: no repeat
    held = [(1.0, e.KEY_KP8)] + [(1.5 + i * 0.04, e.KEY_KP8) for i in range(15)]  # 1.1 s held
    kinds = gestures(held, "KEY_KP8")
    assert kinds[0] == "press" and kinds.count("repeat") >= 3
    dot = [(1.0, e.KEY_KPDOT)] + [(1.5 + i * 0.04, e.KEY_KPDOT) for i in range(10)]
    assert gestures(dot, "KEY_KPDOT") == ["hold"]  # . held: cancel
    assert gestures([(1.0, e.KEY_KPDOT)], "KEY_KPDOT") == []  # . tapped: nothing
    assert gestures([(1.0, e.KEY_KP0), (1.15, e.KEY_KP0)], "KEY_KP0") == ["double"]


def test_the_release_of_a_tap_is_known_before_it_is_due():
    """LAG_S must cover the wait for autorepeat, or a tap would reach the daemon as a longer press."""
    assert LAG_S + TAP_S >= TAP_RELEASE_S and LAG_S + AUTOREPEAT_INTERVAL_S >= REPEAT_GAP_S
