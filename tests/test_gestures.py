"""Gesture timing from injected event timestamps: keys, rotary sources, loss and key names (the Clock: test_stale.py)."""

import pytest
from evdev import InputEvent
from evdev import ecodes as e
from hypothesis import given, settings
from hypothesis import strategies as st

from octopanel.input.keynames import all_key_names, key_code, key_name
from octopanel.panel.gesture_config import Gesture, KeyTiming, RotaryConfig
from octopanel.panel.gestures import LATENCY_S, GestureEngine

CLICK = KeyTiming({"press", "release", "hold", "double"})


def event(t, type_, code, value):
    sec, usec = divmod(round(t * 1e6), 1_000_000)
    return InputEvent(sec, usec, type_, code, value)


def key(t, name, value):
    return event(t, e.EV_KEY, key_code(name), value)


def rel(t, code, value):
    return event(t, e.EV_REL, code, value)


def syn(t, code=e.SYN_REPORT):
    return event(t, e.EV_SYN, code, 0)


def engine(bindings=None, rotary=None):
    bindings = bindings or {}
    return GestureEngine(lambda name: bindings.get(name, KeyTiming()), rotary)


def feed(eng, *events, device="pad"):
    out = []
    for ev in events:
        out += eng.feed(ev, device)
    return out


def summary(gestures):
    return [(g.kind, g.key, round(g.time, 6)) for g in gestures]


def test_unbound_key_gives_press_and_release_at_once():
    eng = engine()
    assert summary(feed(eng, key(1.0, "KEY_KP8", 1), syn(1.0), key(1.1, "KEY_KP8", 0), syn(1.1))) == [
        ("press", "KEY_KP8", 1.0),
        ("release", "KEY_KP8", 1.1),
    ]
    assert eng.next_deadline() is None


def test_press_bound_with_hold_is_a_click_emitted_at_release():
    eng = engine({"KEY_KP5": KeyTiming({"press", "hold"})})
    assert feed(eng, key(0.0, "KEY_KP5", 1)) == []
    assert summary(feed(eng, key(0.3, "KEY_KP5", 0))) == [("press", "KEY_KP5", 0.3), ("release", "KEY_KP5", 0.3)]
    assert eng.tick(100.0) == []


def test_hold_fires_exactly_at_threshold_and_swallows_the_press():
    eng = engine({"KEY_KP5": KeyTiming({"press", "hold"})})
    out = feed(eng, key(10.0, "KEY_KP5", 1), key(10.8, "KEY_KP5", 0))
    assert summary(out) == [("hold", "KEY_KP5", 10.8), ("release", "KEY_KP5", 10.8)]


def test_release_one_microsecond_before_threshold_is_a_click():
    eng = engine({"KEY_KP5": KeyTiming({"press", "hold"})})
    out = feed(eng, key(10.0, "KEY_KP5", 1), key(10.799999, "KEY_KP5", 0))
    assert [g.kind for g in out] == ["press", "release"]


def test_hold_from_tick_waits_for_latency_and_fires_once():
    eng = engine({"BTN_0": KeyTiming({"hold"})})
    assert summary(feed(eng, key(0.0, "BTN_MISC", 1))) == [("press", "BTN_0", 0.0)]  # hold only: no click
    assert eng.next_deadline() == pytest.approx(0.8 + LATENCY_S)
    assert eng.tick(0.8) == []  # a release stamped before 0.8 may still be on its way
    assert summary(eng.tick(0.8 + LATENCY_S)) == [("hold", "BTN_0", 0.8)]
    assert eng.tick(5.0) == [] and eng.next_deadline() is None
    assert summary(feed(eng, key(6.0, "BTN_0", 0))) == [("release", "BTN_0", 6.0)]


def test_double_tap_gives_double_only():
    eng = engine({"KEY_KP0": CLICK})
    out = feed(eng, key(0.0, "KEY_KP0", 1), key(0.1, "KEY_KP0", 0), key(0.2, "KEY_KP0", 1), key(0.3, "KEY_KP0", 0))
    out += eng.tick(100.0)
    assert summary(out) == [("release", "KEY_KP0", 0.1), ("double", "KEY_KP0", 0.2), ("release", "KEY_KP0", 0.3)]


def test_two_slow_presses_are_two_clicks():
    eng = engine({"KEY_KP0": CLICK})
    out = feed(eng, key(0.0, "KEY_KP0", 1), key(0.1, "KEY_KP0", 0))
    assert eng.next_deadline() == pytest.approx(0.35 + LATENCY_S)
    out += feed(eng, key(0.35, "KEY_KP0", 1), key(0.45, "KEY_KP0", 0))  # exactly double_s later: too late
    out += eng.tick(0.8)
    assert summary(out) == [
        ("release", "KEY_KP0", 0.1),
        ("press", "KEY_KP0", 0.35),
        ("release", "KEY_KP0", 0.45),
        ("press", "KEY_KP0", 0.7),
    ]


def test_double_with_press_unbound_keeps_the_immediate_press():
    eng = engine({"KEY_KP0": KeyTiming({"double"})})
    out = feed(eng, key(0.0, "KEY_KP0", 1), key(0.05, "KEY_KP0", 0), key(0.1, "KEY_KP0", 1))
    assert [g.kind for g in out] == ["press", "release", "double"]


def test_click_held_past_double_window_waits_for_release_when_hold_is_bound():
    eng = engine({"KEY_KP0": CLICK})
    feed(eng, key(0.0, "KEY_KP0", 1))
    assert eng.tick(0.5) == []
    assert summary(feed(eng, key(0.6, "KEY_KP0", 0))) == [("press", "KEY_KP0", 0.6), ("release", "KEY_KP0", 0.6)]


def test_a_hold_cannot_start_a_double():
    eng = engine({"KEY_KP0": KeyTiming({"press", "hold", "double"}, hold_s=0.2, double_s=0.5)})
    out = feed(eng, key(0.0, "KEY_KP0", 1), key(0.3, "KEY_KP0", 0), key(0.4, "KEY_KP0", 1), key(0.45, "KEY_KP0", 0))
    out += eng.tick(10.0)
    assert [g.kind for g in out] == ["hold", "release", "release", "press"]


def test_repeat_counts_while_held():
    eng = engine({"KEY_KP8": KeyTiming({"press", "repeat"}, repeat_delay_s=0.5, repeat_s=0.1)})
    out = feed(eng, key(0.0, "KEY_KP8", 1))
    out += eng.tick(1.0)
    out += feed(eng, key(1.02, "KEY_KP8", 0))
    repeats = [g for g in out if g.kind == "repeat"]
    assert [g.steps for g in repeats] == [1, 2, 3, 4, 5, 6]
    assert [round(g.time, 6) for g in repeats] == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert [g.kind for g in out] == ["press"] + ["repeat"] * 6 + ["release"]
    assert eng.tick(5.0) == []


def test_kernel_autorepeat_changes_nothing_and_never_presses():
    eng = engine({"KEY_KP8": KeyTiming({"press", "repeat"})})
    out = feed(eng, key(0.0, "KEY_KP2", 2), key(0.1, "KEY_KP2", 0))  # held since before we started
    assert out == []
    out = feed(eng, key(1.0, "KEY_KP8", 1), key(1.25, "KEY_KP8", 2), key(1.3, "KEY_KP8", 2), key(1.4, "KEY_KP8", 0))
    assert [g.kind for g in out] == ["press", "release"]


def test_syn_dropped_forgets_held_keys_without_gestures():
    eng = engine({"KEY_KP5": KeyTiming({"press", "hold"}), "KEY_KP1": KeyTiming({"hold"})})
    feed(eng, key(0.0, "KEY_KP5", 1), syn(0.0))
    out = feed(eng, syn(0.1, e.SYN_DROPPED), key(0.1, "KEY_KP1", 1), syn(0.1))  # the frame after the drop is lost
    out += eng.tick(10.0)
    out += feed(eng, key(10.5, "KEY_KP5", 0), key(10.6, "KEY_KP1", 0), syn(10.6))
    assert out == [] and eng.next_deadline() is None
    assert [g.kind for g in feed(eng, key(11.0, "KEY_KP1", 1))] == ["press"]


def test_reset_on_unplug_emits_nothing():
    eng = engine({"KEY_KP0": CLICK})
    feed(eng, key(0.0, "KEY_KP0", 1), key(0.1, "KEY_KP0", 0), key(0.2, "KEY_KP9", 1))
    eng.reset("pad")
    assert eng.next_deadline() is None
    assert eng.tick(100.0) == []
    assert feed(eng, key(100.1, "KEY_KP9", 0)) == []


def test_finish_emits_only_what_is_certain():
    eng = engine(
        {"KEY_KP0": CLICK, "KEY_KP5": KeyTiming({"press", "hold"})}, RotaryConfig(shuttle={"pad"}, shuttle_idle_s=0.3)
    )
    feed(eng, key(0.0, "KEY_KP0", 1), key(0.1, "KEY_KP0", 0), key(0.2, "KEY_KP5", 1), rel(0.2, e.REL_WHEEL, 4))
    assert summary(eng.finish("pad")) == [("press", "KEY_KP0", 0.35), ("shuttle", "REL_WHEEL", 0.5)]
    assert eng.next_deadline() is None and eng.finish("pad") == []


def test_timers_of_one_device_ignore_events_of_another():
    eng = engine({"KEY_KP5": KeyTiming({"press", "hold"})})
    feed(eng, key(0.0, "KEY_KP5", 1), device="a")
    assert feed(eng, key(0.9, "KEY_KP1", 1), device="b") == [Gesture("press", "KEY_KP1", 0.9, "b")]
    # Device a's release may be read after b's later event: its own timestamp decides.
    assert [g.kind for g in feed(eng, key(0.7, "KEY_KP5", 0), device="a")] == ["press", "release"]


def test_rotary_axes_step_and_hi_res_is_ignored():
    eng = engine()
    out = feed(
        eng,
        rel(0.0, e.REL_WHEEL_HI_RES, 120),
        rel(0.0, e.REL_WHEEL, 1),
        syn(0.0),
        rel(0.1, e.REL_HWHEEL_HI_RES, -240),
        rel(0.1, e.REL_HWHEEL, -2),
        rel(0.2, e.REL_DIAL, -1),
        rel(0.3, e.REL_X, 5),
    )
    assert [(g.kind, g.key, g.steps) for g in out] == [
        ("rotary", "REL_WHEEL", 1),
        ("rotary", "REL_HWHEEL", -2),
        ("rotary", "REL_DIAL", -1),
    ]


def test_shuttle_dial_is_an_8_bit_counter_with_wraparound():
    eng = engine(rotary=RotaryConfig(shuttle={"sx"}))
    steps = []
    for t, value in enumerate([250, 253, 2, 254, 254, 127]):
        steps += [g.steps for g in feed(eng, rel(t, e.REL_DIAL, value), syn(t), device="sx")]
    assert steps == [3, 5, -4, -127]  # 250 is the baseline; 253->2 wraps; 254->127 is the shorter way round
    eng.reset("sx")
    assert feed(eng, rel(9, e.REL_DIAL, 10), syn(9), device="sx") == []  # a new baseline after reset


def test_shuttle_ring_position_and_its_return_to_zero():
    eng = engine(rotary=RotaryConfig(shuttle={"sx"}, shuttle_idle_s=0.5))
    out = feed(eng, rel(0.0, e.REL_DIAL, 40), rel(0.0, e.REL_WHEEL, 3), syn(0.0), device="sx")
    out += feed(eng, rel(0.1, e.REL_DIAL, 40), rel(0.1, e.REL_WHEEL, 3), syn(0.1), device="sx")  # dial report only
    assert [(g.kind, g.position, g.steps) for g in out] == [("shuttle", 3, 3)]
    # The report of the return carries the dial but not the ring: that is position 0.
    out = feed(eng, rel(0.2, e.REL_DIAL, 40), syn(0.2), device="sx")
    assert [(g.kind, g.key, g.position, g.steps, round(g.time, 6)) for g in out] == [
        ("shuttle", "REL_WHEEL", 0, -3, 0.2)
    ]
    # With the counter at 0 nothing is reported at all: silence means 0.
    feed(eng, rel(1.0, e.REL_WHEEL, -5), syn(1.0), device="sx")
    assert eng.next_deadline() == pytest.approx(1.5 + LATENCY_S)
    assert [(g.position, round(g.time, 6)) for g in eng.tick(1.6)] == [(0, 1.5)]
    assert eng.next_deadline() is None


def test_shuttle_mode_is_per_device():
    eng = engine(rotary=RotaryConfig(shuttle=lambda label: label.startswith("sx")))
    assert [g.steps for g in feed(eng, rel(0, e.REL_DIAL, 3), device="knob")] == [3]
    assert feed(eng, rel(0, e.REL_DIAL, 3), device="sx#2") == []


def test_key_pair_knob_steps_on_press_and_autorepeat():
    eng = engine(rotary=RotaryConfig(key_pairs={"KNOB": ("KEY_VOLUMEUP", "KEY_VOLUMEDOWN")}))
    out = feed(
        eng,
        key(0.0, "KEY_VOLUMEUP", 1),
        key(0.01, "KEY_VOLUMEUP", 0),
        key(0.1, "KEY_VOLUMEDOWN", 1),
        key(0.2, "KEY_VOLUMEDOWN", 2),
        key(0.3, "KEY_VOLUMEDOWN", 0),
    )
    assert [(g.kind, g.key, g.steps) for g in out] == [
        ("rotary", "KNOB", 1),
        ("rotary", "KNOB", -1),
        ("rotary", "KNOB", -1),
    ]


def test_configuration_errors_are_refused():
    with pytest.raises(ValueError, match="both repeat and hold"):
        KeyTiming({"repeat", "hold"})
    with pytest.raises(ValueError, match="unknown key gesture 'tap'"):
        KeyTiming({"tap"})
    with pytest.raises(ValueError, match="hold_s must be above 0"):
        KeyTiming(hold_s=0)
    with pytest.raises(KeyError):
        RotaryConfig(key_pairs={"KNOB": ("KEY_VOLUP", "KEY_VOLUMEDOWN")})
    with pytest.raises(ValueError, match="already used"):
        RotaryConfig(key_pairs={"A": ("KEY_1", "KEY_2"), "B": ("KEY_2", "KEY_3")})


def test_key_names_accept_every_alias_and_give_one_canonical_name():
    assert key_code("BTN_MISC") == key_code("BTN_0") == 256
    assert key_name(256) == "BTN_0" and key_name(113) == "KEY_MUTE" and key_name(e.KEY_KP8) == "KEY_KP8"
    assert key_name(key_code("KEY_SCREENLOCK")) == key_name(key_code("KEY_COFFEE"))
    assert key_code(key_name(0x2FE)) == 0x2FE  # no evdev name, still round-trips
    with pytest.raises(KeyError):
        key_code("KEY_KP10")
    names = all_key_names()
    assert {"BTN_MISC", "BTN_0", "KEY_KP8", "BTN_SOUTH"} <= set(names) and "KEY_MAX" not in names


HOLD_S, DOUBLE_S = 0.8, 0.35
durations = st.integers(min_value=1, max_value=2_000_000)  # microseconds
gaps = st.integers(min_value=1, max_value=1_500_000)


@settings(max_examples=300, deadline=None)
@given(
    presses=st.lists(st.tuples(durations, gaps, st.floats(0, 1), st.booleans()), min_size=1, max_size=12),
    bound=st.sampled_from(
        [{"press", "hold", "double"}, {"hold"}, {"double"}, {"press", "hold"}, {"press", "double", "release"}]
    ),
)
def test_property_short_presses_never_hold_and_lone_presses_never_double(presses, bound):
    eng = engine({"KEY_KP5": KeyTiming(bound, hold_s=HOLD_S, double_s=DOUBLE_S)})
    t_us, downs, out = 1_000_000_000, [], []
    for duration, gap, tick_at, do_tick in presses:
        down, up = t_us, t_us + duration
        downs.append((down / 1e6, duration))
        out += eng.feed(key(down / 1e6, "KEY_KP5", 1), "pad")
        if do_tick:  # a well-behaved loop: it has fed every event stamped more than LATENCY_S ago
            out += eng.tick(down / 1e6 + tick_at * (duration / 1e6 + LATENCY_S))
        out += eng.feed(key(up / 1e6, "KEY_KP5", 0), "pad")
        t_us = up + gap
    out += eng.tick(t_us / 1e6 + 10)
    for g in out:
        if g.kind == "hold":
            start, duration = min(downs, key=lambda d: abs(d[0] + HOLD_S - g.time))
            assert start + HOLD_S == pytest.approx(g.time, abs=1e-6)
            assert duration >= HOLD_S * 1e6 - 1
        if g.kind == "double":
            index = [round(d[0], 6) for d in downs].index(round(g.time, 6))
            assert index > 0, "a first press produced a double"
            previous, previous_duration = downs[index - 1]
            assert g.time - previous < DOUBLE_S and previous_duration < HOLD_S * 1e6
    if len(presses) == 1:
        assert "double" not in [g.kind for g in out]
    if all(d < HOLD_S * 1e6 for d, *_ in presses):
        assert "hold" not in [g.kind for g in out]
    assert sum(g.kind == "release" for g in out) == len(presses)
