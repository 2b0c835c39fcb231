"""The daemon in-process with fake devices on pipes (the device seam) and a fake printer: unplug and replug."""

import os
import time

import pytest
from evdev import ecodes as e
from fakedevices import FakeBus
from fakeprinter import FakePrinter
from inprocdaemon import InProcessDaemon, bus_devices

from octopanel.panel import keymap

KEYMAP = """\
devices:
  - name: "Test Keypad"
feedback: {beep: false, message: false, leds: mode}
modes:
  step: {values: [1, 10]}
settings: {repeat_delay_s: 0.1, repeat_s: 0.05, max_repeat_mm: 1000}
keys:
  KEY_KP8: {press: "jog y={step}", repeat: "jog y={step}"}
  KEY_KP5: "msg hello"
  KEY_KPPLUS: "mode step next"
"""


class Running(InProcessDaemon):
    """The daemon over a FakeBus (`bus`) and a FakePrinter (`printer`); start() runs its loop."""

    def __init__(self, tmp_path, printer):
        self.bus, self.printer = FakeBus(), printer
        super().__init__(tmp_path, KEYMAP, printer, devices=bus_devices(self.bus, 0.05))


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.fixture
def running(tmp_path):
    r = Running(tmp_path, FakePrinter(delay_s=0.002))
    yield r
    if r.thread.is_alive():
        r.stop()


def jogs(printer):
    return [s for s in printer.sent if s[0] == "jog"]


def test_a_keypad_missing_at_start_is_picked_up_when_plugged(running):
    running.start()
    time.sleep(0.2)
    assert running.daemon.status().startswith("waiting for keypad")
    node = running.bus.plug("/dev/input/event3", "Test Keypad", phys="usb-1/input0")
    wait_for(lambda: running.daemon.connected)
    wait_for(lambda: node.grabbed)
    node.emit(e.KEY_KP5, 1)
    node.emit(e.KEY_KP5, 0)
    wait_for(lambda: ("gcode", "M117 hello") in running.printer.sent)


def test_unplug_mid_hold_stops_motion_and_replug_resumes_without_replay(running):
    node = running.bus.plug("/dev/input/event3", "Test Keypad", phys="usb-1/input0")
    running.start()
    wait_for(lambda: node.grabbed)
    node.emit(e.KEY_KP8, 1)  # held: press, then repeats every 50 ms
    wait_for(lambda: len(jogs(running.printer)) >= 3)
    running.bus.unplug("/dev/input/event3")
    wait_for(lambda: not running.daemon.connected)
    time.sleep(0.1)  # a request already in flight may still land
    after_unplug = len(jogs(running.printer))
    time.sleep(0.5)  # ten repeat periods: a held key that survived the unplug would keep jogging
    assert len(jogs(running.printer)) == after_unplug
    node2 = running.bus.plug("/dev/input/event7", "Test Keypad", phys="usb-2/input0")  # another port
    wait_for(lambda: node2.grabbed)
    time.sleep(0.3)
    assert len(jogs(running.printer)) == after_unplug  # nothing pressed before the unplug is replayed
    node2.emit(e.KEY_KP5, 1)
    node2.emit(e.KEY_KP5, 0)
    wait_for(lambda: ("gcode", "M117 hello") in running.printer.sent)
    assert len(jogs(running.printer)) == after_unplug


def test_grab_waits_until_no_key_is_held(running):
    node = running.bus.plug("/dev/input/event3", "Test Keypad", phys="usb-1/input0")
    node.held.add(e.KEY_KP5)  # a key already down when the daemon opens the device
    running.start()
    wait_for(lambda: running.daemon.connected)
    time.sleep(0.1)
    assert not node.grabbed
    node.emit(e.KEY_KP5, 0)
    wait_for(lambda: node.grabbed)


def test_status_line_and_mode_change(running):
    node = running.bus.plug("/dev/input/event3", "Test Keypad", phys="usb-1/input0")
    running.start()
    wait_for(lambda: node.grabbed)
    wait_for(lambda: node.leds.get("NUML") is False)  # first step value: no LED
    node.emit(e.KEY_KPPLUS, 1)
    node.emit(e.KEY_KPPLUS, 0)
    wait_for(lambda: running.daemon.dispatch.panel.modes["step"] == 10)
    wait_for(lambda: node.leds.get("NUML") is True)  # the LEDs show the mode
    node.emit(e.KEY_KP8, 1)
    node.emit(e.KEY_KP8, 0)
    wait_for(lambda: jogs(running.printer))
    assert jogs(running.printer)[0] == ("jog", None, 10, None)
    wait_for(lambda: "printer: idle" in running.daemon.status())
    assert running.daemon.status() == "keypad: connected (1 device) · printer: idle · mode: step 10"


def test_presses_whose_binding_does_not_add_up_are_never_merged(tmp_path):
    """KEY_KP9 jogs when idle but babysteps while printing: three quick presses must be three babysteps."""
    r = Running(tmp_path, FakePrinter(state="printing", delay_s=0.05))
    path = tmp_path / "keymap.yaml"
    path.write_text(
        KEYMAP + '  KEY_KP9:\n    - {press: "jog z=1", when: idle}\n    - {press: "g M290 Z0.02", when: printing}\n'
    )
    r.daemon.dispatch.replace_keymap(keymap.load(path, r.daemon.registry, r.daemon.ctx.limits))
    node = r.bus.plug("/dev/input/event3", "Test Keypad", phys="usb-1/input0")
    r.start()
    try:
        wait_for(lambda: node.grabbed)
        for _ in range(3):
            node.emit(e.KEY_KP9, 1)
            node.emit(e.KEY_KP9, 0)
        wait_for(lambda: r.printer.sent.count(("gcode", "M290 Z0.02")) == 3)
        time.sleep(0.2)
        assert r.printer.sent == [("gcode", "M290 Z0.02")] * 3
    finally:
        r.stop()


class FdsOnly:
    """The loop's view of the devices: fds() and generation; nothing else is touched by _sync_fds."""

    def __init__(self):
        self.fd_list, self.generation = [], 0

    def fds(self):
        return self.fd_list

    def close(self):
        pass


def test_a_reused_fd_number_is_registered_again(tmp_path):
    """A lost keypad's fd is closed, which drops it from epoll; the replugged one may get the same number in
    the same loop round. fds() then looks unchanged, so only the generation tells the loop to register it."""
    devices = FdsOnly()
    daemon = InProcessDaemon(tmp_path, KEYMAP, FakePrinter(), devices=lambda *_: devices).daemon  # loop not run
    old_r, old_w = os.pipe()
    new_r, new_w = os.pipe()
    try:
        devices.fd_list = [old_r]
        daemon._sync_fds()
        os.dup2(new_r, old_r)  # old_r's number now names the new pipe, as a close then open() may do
        devices.generation += 1
        daemon._sync_fds()
        os.write(new_w, b"x")
        assert ("device", old_r) in [key.data for key, _ in daemon.selector.select(1.0)]
    finally:
        daemon.selector.close()
        for fd in (old_r, old_w, new_r, new_w):
            os.close(fd)


def test_a_binding_is_parsed_once_however_often_it_is_pressed(running):
    """Each press used to parse its binding twice (dispatch, then the worker), ~40 µs each on the press path;
    a rendered line parses the same way every time, so the dispatcher keeps its Call. A mode change renders
    another line, which is parsed once in turn."""
    parsed = []
    registry = running.daemon.registry
    original = registry.parse_line
    registry.parse_line = lambda line, limits: parsed.append(line) or original(line, limits)
    node = running.bus.plug("/dev/input/event3", "Test Keypad", phys="usb-1/input0")
    running.start()
    wait_for(lambda: node.grabbed)
    for key in [e.KEY_KP8] * 4 + [e.KEY_KPPLUS] + [e.KEY_KP8] * 3:
        node.emit(key, 1)
        node.emit(key, 0)
        time.sleep(0.02)
    wait_for(lambda: len(jogs(running.printer)) == 7)
    assert [j[2] for j in jogs(running.printer)] == [1] * 4 + [10] * 3
    assert sorted(line for line in parsed if line.startswith("jog")) == ["jog y=1", "jog y=10"]
