"""Devices without hardware: evdev's own decoding on pipes, replay and record, and DeviceManager on fakes."""

import errno
import logging
import math
import os
import select
import struct
import threading
import time

import evdev
import pytest
from evdev import ecodes as e
from fakedevices import FakeBus, pipe_device, press_frame, raw  # noqa: F401

from octopanel.errors import ConfigError
from octopanel.input.devices import DeviceInfo, DeviceManager
from octopanel.input.devicespec import DeviceSpec
from octopanel.input.discovery import format_devices, list_devices
from octopanel.input.evdev_source import DeviceGone, EvdevSource
from octopanel.input.replay import NATIVE_FORMAT, EndOfReplay, ReplaySource, record

KP1, KP2 = e.KEY_KP1, e.KEY_KP2


def wait_readable(fds, timeout=2.0):
    ready, _, _ = select.select(fds, [], [], timeout)
    return ready


def read_all(source, timeout=5.0):
    """Every event of a source until EndOfReplay, with the monotonic time each batch arrived."""
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not wait_readable([source], 0.5):
            continue
        try:
            batch = source.read()
        except EndOfReplay:
            return got
        got += [(time.monotonic(), ev) for ev in batch]
    raise AssertionError("no end of replay")


def triples(events):
    return [(ev.type, ev.code, ev.value) for ev in events]


# --- the live source, on a pipe -----------------------------------------------------------------------------


def test_evdev_source_decodes_a_pipe_and_reports_its_end():
    device, write_end = pipe_device()
    source = EvdevSource(device, label="pad")
    assert source.read() == []  # nothing yet: not an error
    os.write(write_end, press_frame(1.5, KP1))
    assert triples(source.read()) == [(e.EV_KEY, KP1, 1), (e.EV_SYN, e.SYN_REPORT, 0)]
    os.close(write_end)
    with pytest.raises(DeviceGone, match="pad: end of file"):
        source.read()
    source.close()


class UnpluggedDevice(evdev.InputDevice):
    """An InputDevice whose node is gone: reads fail with ENODEV as after an unplug."""

    def read(self):
        raise OSError(errno.ENODEV, "No such device")


def test_evdev_source_turns_enodev_into_device_gone():
    device = UnpluggedDevice.__new__(UnpluggedDevice)
    device.fd, device.path = os.open(os.devnull, os.O_RDONLY), "/dev/input/event7"
    source = EvdevSource(device, label="pad")
    with pytest.raises(DeviceGone, match="No such device"):
        source.read()
    source.close()


# --- replay and record ---------------------------------------------------------------------------------------


def recording(tmp_path, frames, fmt=NATIVE_FORMAT):
    path = tmp_path / "session.bin"
    path.write_bytes(b"".join(press_frame(t, code, value, fmt) for t, code, value in frames))
    return path


FRAMES = [(1000.0, KP1, 1), (1000.5, KP1, 0), (1001.0, KP2, 1), (1001.0, KP2, 0)]


def test_replay_from_file_keeps_timing_scaled_and_rebased(tmp_path):
    start = time.monotonic()
    source = ReplaySource(recording(tmp_path, FRAMES), speed=10)
    got = read_all(source)
    source.close()
    assert [(ev.code, ev.value) for _, ev in got if ev.type == e.EV_KEY] == [(KP1, 1), (KP1, 0), (KP2, 1), (KP2, 0)]
    stamps = [ev.timestamp() for _, ev in got if ev.type == e.EV_KEY]
    assert start <= stamps[0] <= start + 0.5  # rebased: the first event is "now"
    assert [round(s - stamps[0], 4) for s in stamps] == [0.0, 0.05, 0.1, 0.1]
    arrivals = [when for when, ev in got if ev.type == e.EV_KEY]
    for arrival, stamp in zip(arrivals, stamps):
        assert stamp - 0.001 <= arrival <= stamp + 0.04


def test_replay_as_fast_as_possible_keeps_the_recorded_spacing(tmp_path):
    for speed in (0, math.inf):
        started = time.monotonic()
        source = ReplaySource(recording(tmp_path, FRAMES), speed=speed)
        got = read_all(source)
        source.close()
        assert time.monotonic() - started < 0.5
        stamps = [ev.timestamp() for _, ev in got if ev.type == e.EV_KEY]
        assert [round(s - stamps[0], 4) for s in stamps] == [0.0, 0.5, 1.0, 1.0]


def test_replay_reads_32_bit_recordings(tmp_path):
    source = ReplaySource(recording(tmp_path, FRAMES, fmt="=iiHHi"), speed=0)
    got = read_all(source)
    source.close()
    assert len(got) == 8 and triples(ev for _, ev in got)[:2] == [(e.EV_KEY, KP1, 1), (e.EV_SYN, 0, 0)]


def test_replay_from_a_fifo_ends_when_the_writer_closes(tmp_path):
    fifo = tmp_path / "live.fifo"
    os.mkfifo(fifo)
    source = ReplaySource(fifo, speed=1)
    assert source.read() == []  # no writer yet: nothing, and no end either

    def writer():
        with open(fifo, "wb", buffering=0) as out:
            out.write(press_frame(50.0, KP1))
            time.sleep(0.2)
            out.write(press_frame(50.2, KP1, 0))

    thread = threading.Thread(target=writer)
    thread.start()
    got = read_all(source)
    thread.join()
    source.close()
    assert [(ev.code, ev.value) for _, ev in got if ev.type == e.EV_KEY] == [(KP1, 1), (KP1, 0)]
    stamps = [ev.timestamp() for _, ev in got if ev.type == e.EV_KEY]
    assert stamps[1] - stamps[0] == pytest.approx(0.2, abs=1e-6)
    arrivals = [when for when, ev in got if ev.type == e.EV_KEY]
    assert arrivals[1] - arrivals[0] > 0.15  # the first frame was not held back until the second came


def test_live_fifo_is_read_directly_like_a_device_node(tmp_path):
    """--live: no feeder thread, nothing readable before a writer connects, the writer's own timestamps and
    frames as written, and an unplug (not an end) when the writer closes."""
    fifo = tmp_path / "keypad.fifo"
    os.mkfifo(fifo)
    threads = threading.active_count()
    source = ReplaySource(fifo, live=True)
    assert threading.active_count() == threads and not source.monotonic  # the Clock maps its timestamps
    assert not wait_readable([source], 0.1)  # no writer yet: neither data nor an end
    writer = os.open(fifo, os.O_WRONLY)
    try:
        os.write(writer, press_frame(50.0, KP1))
        assert wait_readable([source], 1.0)
        assert triples(source.read()) == [(e.EV_KEY, KP1, 1), (e.EV_SYN, 0, 0)]
        assert source.active_keys() == [KP1]
        assert source.read() == []  # drained, not ended
        os.write(writer, press_frame(50.25, KP1, 0))
        assert wait_readable([source], 1.0)
        [up, _syn] = source.read()
        assert (up.value, up.timestamp()) == (0, pytest.approx(50.25)) and source.active_keys() == []
    finally:
        os.close(writer)
    assert wait_readable([source], 1.0)
    with pytest.raises(DeviceGone, match="writer closed it") as gone:
        source.read()
    assert not isinstance(gone.value, EndOfReplay)  # the manager reopens the FIFO for the next writer
    source.close()


def test_live_replay_needs_a_fifo(tmp_path):
    with pytest.raises(ValueError, match="needs a FIFO"):
        ReplaySource(recording(tmp_path, FRAMES), live=True)


def test_replay_close_does_not_hang_on_a_fifo_without_writer(tmp_path):
    fifo = tmp_path / "idle.fifo"
    os.mkfifo(fifo)
    source = ReplaySource(fifo)
    time.sleep(0.05)
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < 1.0
    with pytest.raises(EndOfReplay):
        source.read()


def test_record_then_replay_round_trip_is_byte_exact(tmp_path):
    original = b"".join(press_frame(t, code, value) for t, code, value in FRAMES)
    fifo = tmp_path / "node.fifo"  # stands in for /dev/input/eventN
    os.mkfifo(fifo)

    def kernel():
        with open(fifo, "wb", buffering=0) as out:
            for offset in range(0, len(original), 48):
                out.write(original[offset : offset + 48])

    thread = threading.Thread(target=kernel)
    thread.start()
    copy = tmp_path / "copy.bin"
    assert record(str(fifo), copy) == len(original)
    thread.join()
    assert copy.read_bytes() == original
    # Recording a Source packs its events: same events, timestamps as the source gave them.
    replay = ReplaySource(copy, speed=0)
    again = tmp_path / "again.bin"
    assert record(replay, again) == len(original)
    replay.close()
    assert [struct.unpack(NATIVE_FORMAT, again.read_bytes()[i : i + 24])[2:] for i in range(0, len(original), 24)] == [
        struct.unpack(NATIVE_FORMAT, original[i : i + 24])[2:] for i in range(0, len(original), 24)
    ]


def test_record_stops_when_asked(tmp_path):
    device, write_end = pipe_device()
    stop = threading.Event()
    out = tmp_path / "out.bin"
    thread = threading.Thread(target=record, args=(EvdevSource(device), out, stop))
    thread.start()
    os.write(write_end, press_frame(3.0, KP1))
    time.sleep(0.3)
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive() and out.read_bytes() == press_frame(3.0, KP1)
    os.close(write_end)
    device.close()


# --- the device manager, on fakes backed by real pipes -------------------------------------------------------


def manager(bus, specs, changes, **options):
    options.setdefault("watch_dir", None)
    return DeviceManager(
        specs,
        lister=bus.lister,
        opener=bus.opener,
        on_change=lambda label, present, error: changes.append((label, present, error)),
        **options,
    )


def pump(mgr, timeout=1.0):
    """One select round over the manager's fds: every (label, events) read."""
    out = []
    for fd in wait_readable(mgr.fds(), timeout):
        out += mgr.handle_readable(fd)
    return out


def test_missing_device_is_waited_for_then_found(caplog):
    bus, changes = FakeBus(), []
    spec = DeviceSpec(name="*keypad*")
    mgr = manager(bus, [spec], changes)
    with caplog.at_level(logging.INFO):
        mgr.rescan()
        mgr.rescan()
    assert mgr.missing() == [spec] and mgr.fds() == []
    assert [r.getMessage() for r in caplog.records].count("waiting for name='*keypad*'") == 1
    pad = bus.plug("/dev/input/event3", "USB Keypad")
    mgr.rescan()
    assert changes == [("USB Keypad", True, None)] and mgr.missing() == [] and pad.grabbed
    pad.emit(KP1, 1)
    [(label, events)] = pump(mgr)
    assert label == "USB Keypad" and triples(events)[0] == (e.EV_KEY, KP1, 1)
    mgr.close()
    assert pad.closed


def test_unplug_then_replug_on_a_new_path_is_found_and_grabbed_again(caplog):
    bus, changes = FakeBus(), []
    mgr = manager(bus, [DeviceSpec(name="USB Keypad", label="pad")], changes)
    first = bus.plug("/dev/input/event3", "USB Keypad")
    mgr.rescan()
    bus.unplug("/dev/input/event3")
    with caplog.at_level(logging.INFO):
        assert pump(mgr) == []
        mgr.rescan()
    assert changes[-1][:2] == ("pad", False) and isinstance(changes[-1][2], DeviceGone)
    assert first.closed and mgr.fds() == [] and mgr.labels() == []
    assert any("waiting for pad" in r.getMessage() for r in caplog.records)
    second = bus.plug("/dev/input/event9", "USB Keypad")
    mgr.rescan()
    assert changes[-1] == ("pad", True, None) and second.grabbed and mgr.fds() == [second.fileno()]
    second.emit(KP2, 1)
    assert [label for label, _ in pump(mgr)] == ["pad"]
    mgr.close()


def test_a_replug_seen_before_the_loss_is_reopened_after_it(tmp_path):
    bus, changes, now = FakeBus(), [], [0.0]
    mgr = manager(bus, [DeviceSpec(name="USB Keypad")], changes, watch_dir=str(tmp_path), now=lambda: now[0])
    bus.plug("/dev/input/event3", "USB Keypad", phys="usb-1.2/input0")
    mgr.rescan()
    bus.unplug("/dev/input/event3")
    new = bus.plug("/dev/input/event4", "USB Keypad", phys="usb-1.2/input0")
    mgr.rescan()  # the new node joins the old device's group, which is not known lost yet
    pump(mgr)
    assert mgr.labels() == [] and changes[-1][1] is False
    assert mgr.next_deadline() == pytest.approx(0.3)  # no inotify event will come for the new node again
    now[0] = mgr.next_deadline()
    mgr.tick(now[0])
    assert mgr.labels() == ["USB Keypad"] and new.grabbed and new.fileno() in mgr.fds()
    mgr.close()


def test_several_devices_at_once_get_distinct_labels():
    bus, changes = FakeBus(), []
    mgr = manager(
        bus,
        [DeviceSpec(name="*Keypad*"), DeviceSpec(vendor=0x0B33, product=0x0020, shuttle=True, label="shuttle")],
        changes,
    )
    a = bus.plug("/dev/input/event3", "USB Keypad", phys="usb-1.1/input0")
    b = bus.plug("/dev/input/event4", "USB Keypad", phys="usb-1.2/input0")
    bus.plug("/dev/input/event5", "Contour Design ShuttleXpress", phys="usb-1.3/input0", vid=0x0B33, pid=0x0020)
    mgr.rescan()
    assert sorted(mgr.labels()) == ["USB Keypad", "USB Keypad#2", "shuttle"]
    assert mgr.spec("shuttle").shuttle and not mgr.spec("USB Keypad").shuttle
    a.emit(KP1, 1)
    b.emit(KP2, 1)
    time.sleep(0.05)
    read = dict(pump(mgr))
    assert {label: triples(events)[0][1] for label, events in read.items()} == {"USB Keypad": KP1, "USB Keypad#2": KP2}
    mgr.close()


def test_nodes_of_one_physical_device_are_one_label_and_are_lost_together():
    bus, changes = FakeBus(), []
    mgr = manager(bus, [DeviceSpec(name="USB Keypad", label="pad")], changes)
    keys = bus.plug("/dev/input/event3", "USB Keypad", phys="usb-0000:01:00.0-1.3/input0")
    consumer = bus.plug("/dev/input/event4", "USB Keypad Consumer Control", phys="usb-0000:01:00.0-1.3/input1")
    mouse = bus.plug("/dev/input/event6", "Other", by_id=["/dev/input/by-id/usb-Acme_Pad-if01-event-mouse"])
    kbd = bus.plug("/dev/input/event5", "Other kbd", by_id=["/dev/input/by-id/usb-Acme_Pad-event-kbd"])
    mgr.rescan()
    assert mgr.labels() == ["pad"] and len(mgr.fds()) == 2 and consumer.grabbed and not mouse.grabbed
    consumer.emit(e.KEY_CALC, 1)
    assert [label for label, _ in pump(mgr)] == ["pad"]
    bus.unplug("/dev/input/event3")
    pump(mgr)
    assert keys.closed and consumer.closed and changes[-1][:2] == ("pad", False)
    by_id = DeviceSpec(path="/dev/input/by-id/usb-Acme_Pad-event-kbd", label="acme")
    mgr2 = manager(bus, [by_id], changes)
    mgr2.rescan()
    assert mgr2.labels() == ["acme"] and len(mgr2.fds()) == 2 and kbd.grabbed and mouse.grabbed
    mgr2.close()


def test_grab_waits_until_no_key_is_held():
    bus, changes = FakeBus(), []
    mgr = manager(bus, [DeviceSpec(name="USB Keypad")], changes)
    pad = bus.plug("/dev/input/event3", "USB Keypad")
    pad.emit(KP1, 1)  # held while the daemon starts
    mgr.rescan()
    assert not pad.grabbed
    pad.emit(KP2, 1)
    pump(mgr)
    pad.emit(KP2, 0)
    pump(mgr)
    assert not pad.grabbed  # KP1 is still down
    pad.emit(KP1, 0)
    pump(mgr)
    assert pad.grabbed
    mgr.close()


def test_no_grab_when_the_spec_says_so_and_config_entries_are_accepted():
    bus, changes = FakeBus(), []
    mgr = manager(bus, [{"name": "USB Keypad", "grab": False}], changes)
    pad = bus.plug("/dev/input/event3", "USB Keypad")
    mgr.rescan()
    assert mgr.labels() == ["USB Keypad"] and not pad.grabbed
    mgr.close()


def test_realtime_timestamps_are_rebased_onto_the_monotonic_clock():
    bus, changes = FakeBus(), []
    mgr = manager(bus, [DeviceSpec(name="USB Keypad")], changes)
    pad = bus.plug("/dev/input/event3", "USB Keypad")
    pad.monotonic = False  # as when the kernel refused EVIOCSCLOCKID: realtime stamps
    mgr.rescan()
    pad.emit(KP1, 1, t=time.time())
    before = time.monotonic()
    [(_, events)] = pump(mgr)
    assert before - 0.01 <= events[0].timestamp() <= time.monotonic()
    mgr.close()


def test_a_finished_recording_is_lost_once_and_never_reopened(tmp_path):
    path = str(recording(tmp_path, FRAMES[:2]))
    changes, listed = [], [DeviceInfo(path, "session")]
    mgr = DeviceManager(
        [DeviceSpec(path=path)],
        lister=lambda: listed,
        opener=lambda p: ReplaySource(p, speed=0),
        watch_dir=None,
        on_change=lambda *change: changes.append(change),
    )
    mgr.rescan()
    events = []
    while mgr.fds():
        for fd in wait_readable(mgr.fds()):
            events += [ev for _, batch in mgr.handle_readable(fd) for ev in batch]
    assert len(events) == 4 and isinstance(changes[-1][2], EndOfReplay)
    mgr.rescan()
    assert mgr.fds() == [] and len(changes) == 2


def test_hotplug_by_inotify_triggers_a_settled_rescan(tmp_path):
    bus, changes, now = FakeBus(), [], [100.0]
    mgr = manager(bus, [DeviceSpec(name="USB Keypad")], changes, watch_dir=str(tmp_path), now=lambda: now[0])
    mgr.rescan()
    [watch] = mgr.fds()
    assert mgr.next_deadline() is None
    bus.plug("/dev/input/event3", "USB Keypad")
    (tmp_path / "event3").touch()
    assert pump(mgr) == []
    assert mgr.next_deadline() == pytest.approx(100.3)
    mgr.tick(100.1)
    assert mgr.labels() == []
    mgr.tick(100.3)
    assert mgr.labels() == ["USB Keypad"] and watch in mgr.fds()
    mgr.close()


def test_with_nothing_to_watch_a_timer_rescans(tmp_path):
    """Neither the directory nor its parent exists (as if inotify were unavailable): rescan on a timer."""
    bus, changes, now = FakeBus(), [], [0.0]
    mgr = manager(
        bus,
        [DeviceSpec(name="USB Keypad")],
        changes,
        watch_dir=str(tmp_path / "absent" / "input"),
        rescan_interval_s=2.0,
        now=lambda: now[0],
    )
    assert mgr.fds() == [] and mgr.next_deadline() == 2.0
    generation = mgr.generation
    mgr.tick(2.0)  # a rescan that finds nothing and still nothing to watch: no fd changed
    assert mgr.generation == generation and mgr.next_deadline() == 4.0
    bus.plug("/dev/input/event3", "USB Keypad")
    mgr.tick(3.0)
    assert bus.scans == 1
    mgr.tick(4.0)
    assert mgr.labels() == ["USB Keypad"] and mgr.next_deadline() == 6.0
    mgr.close()


def test_permission_denied_is_logged_once_with_the_group_hint(caplog):
    changes = []

    def opener(path):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    spec = DeviceSpec(path="/dev/input/by-id/usb-Pad-event-kbd")
    info = DeviceInfo("/dev/input/event3", by_id=("/dev/input/by-id/usb-Pad-event-kbd",), error="permission denied")
    mgr = DeviceManager(
        [spec], lister=lambda: [info], opener=opener, watch_dir=None, on_change=lambda *c: changes.append(c)
    )
    with caplog.at_level(logging.INFO):
        mgr.rescan()
        mgr.rescan()
    denied = [r.getMessage() for r in caplog.records if "permission denied" in r.getMessage()]
    assert len(denied) == 1 and "group input" in denied[0] and mgr.missing() == [spec] and changes == []


# --- specs and listing ----------------------------------------------------------------------------------------


def test_device_specs_from_config_and_shorthand():
    spec = DeviceSpec.from_config({"id": "0B33:0020", "shuttle": True, "label": "jog"})
    assert (spec.vendor, spec.product, spec.shuttle, spec.grab, spec.label) == (0x0B33, 0x0020, True, True, "jog")
    assert DeviceSpec.parse("/dev/input/by-id/x").path == "/dev/input/by-id/x"
    assert DeviceSpec.parse("05f3:0081").vendor == 0x05F3
    assert DeviceSpec.parse("*Keypad*").name == "*Keypad*"
    info = DeviceInfo("/dev/input/event3", "SEM USB Keypad", 0x05F3, 0x0081, "usb-1.2/input0")
    assert DeviceSpec(name="*keypad", phys="usb-1.2/*").matches(info)
    assert not DeviceSpec(name="*keypad", vendor=1, product=2).matches(info)
    with pytest.raises(ConfigError, match=r"keymap.yaml:4: devices\[0\]: unknown option 'nmae' \(did you mean 'name'"):
        DeviceSpec.from_config({"nmae": "x"}, "keymap.yaml", 4, "devices[0]")
    with pytest.raises(ConfigError, match=r"devices.id: expected vendor:product in hex like 0b33:0020, got 'x'"):
        DeviceSpec.from_config({"id": "x"})
    with pytest.raises(ConfigError, match="at least one of name, id, phys or path"):
        DeviceSpec.from_config({"grab": False})
    with pytest.raises(ConfigError, match="devices.grab: expected true or false"):
        DeviceSpec.from_config({"name": "x", "grab": "no"})


def test_physical_grouping_key():
    assert DeviceInfo("/x", phys="usb-0000:01:00.0-1.3/input1").physical == "usb-0000:01:00.0-1.3"
    assert (
        DeviceInfo("/x", by_id=("/d/usb-Contour_ShuttleXpress-event-if00",)).physical
        == "by-id:usb-Contour_ShuttleXpress"
    )
    assert DeviceInfo("/x", by_id=("/d/usb-Pad-if01-event-kbd",)).physical == "by-id:usb-Pad"
    assert DeviceInfo("/dev/input/event9").physical == "/dev/input/event9"


def test_listing_explains_missing_dev_input_and_permissions(tmp_path):
    text, code = format_devices(list_devices(str(tmp_path / "input")), str(tmp_path / "input"))
    assert code == 1 and "does not exist" in text
    root = tmp_path / "input"
    root.mkdir()
    assert format_devices(list_devices(str(root)), str(root)) == (
        f"No input devices in {root}. Plug in the keypad or jog wheel and retry.\n",
        0,
    )
    (root / "event0").touch()
    (root / "by-id").mkdir()
    os.symlink(root / "event0", root / "by-id" / "usb-Pad-event-kbd")

    def denied(path):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    infos = list_devices(str(root), open_device=denied)
    assert infos[0].by_id == (str(root / "by-id" / "usb-Pad-event-kbd"),)
    text, code = format_devices(infos, str(root))
    assert code == 1 and "permission denied" in text and "add the user to group input" in text
    # A file that is not an input device: evdev's own ioctl fails, the listing says so.
    [info] = list_devices(str(root))
    assert info.error and "event0" in format_devices([info], str(root))[0]


def test_listing_describes_a_device():
    info = DeviceInfo(
        "/dev/input/event5",
        "Contour Design ShuttleXpress",
        0x0B33,
        0x0020,
        "usb-1.3/input0",
        ("/dev/input/by-id/usb-Contour_Design_ShuttleXpress-event-if00",),
        15,
        ("REL_WHEEL", "REL_DIAL", "REL_WHEEL_HI_RES"),
        (),
    )
    text, code = format_devices([info], "/")
    assert code == 0
    assert "'Contour Design ShuttleXpress'  id 0b33:0020  phys usb-1.3/input0" in text
    assert "by-id /dev/input/by-id/usb-Contour_Design_ShuttleXpress-event-if00" in text
    assert "15 keys, REL_WHEEL REL_DIAL, LEDs: none" in text


def test_a_replayed_session_gives_the_recorded_gestures(tmp_path):
    from octopanel.panel.gesture_config import KeyTiming
    from octopanel.panel.gestures import GestureEngine

    frames = [(10.0, e.KEY_KP5, 1), (11.0, e.KEY_KP5, 0), (12.0, e.KEY_KP5, 1), (12.1, e.KEY_KP5, 0)]
    path = str(recording(tmp_path, frames))
    eng = GestureEngine(lambda name: KeyTiming({"press", "hold"}))
    mgr = DeviceManager(
        [DeviceSpec(path=path, label="rec")],
        lister=lambda: [DeviceInfo(path, "rec")],
        opener=lambda p: ReplaySource(p, speed=0),
        watch_dir=None,
        on_change=lambda label, present, error: None if present else eng.reset(label),
    )
    mgr.rescan()
    gestures = []
    while mgr.fds():
        for fd in wait_readable(mgr.fds()):
            for label, events in mgr.handle_readable(fd):
                gestures += [g for ev in events for g in eng.feed(ev, label)]
    assert [(g.kind, round(g.time - gestures[0].time + 0.8, 3)) for g in gestures] == [
        ("hold", 0.8),
        ("release", 1.0),
        ("press", 2.1),
        ("release", 2.1),
    ]


def test_without_dev_input_its_creation_is_watched_instead_of_a_timer(tmp_path):
    """No /dev/input yet (nothing plugged since boot): the parent is watched, so idle means no wake-ups."""
    bus, changes, now = FakeBus(), [], [100.0]
    watched = tmp_path / "input"
    mgr = manager(bus, [DeviceSpec(name="USB Keypad")], changes, watch_dir=str(watched), now=lambda: now[0])
    [parent_watch] = mgr.fds()
    assert mgr.next_deadline() is None  # no timer
    (tmp_path / "unrelated").touch()
    assert pump(mgr) == [] and mgr.next_deadline() is None
    watched.mkdir()
    bus.plug("/dev/input/event3", "USB Keypad")
    (watched / "event3").touch()
    assert pump(mgr) == []
    [dir_watch] = mgr.fds()
    assert dir_watch != parent_watch  # a new fd number, so that the daemon's selector registers it
    assert mgr.next_deadline() == pytest.approx(100.3)
    mgr.tick(100.3)
    assert mgr.labels() == ["USB Keypad"]
    bus.plug("/dev/input/event4", "USB Keypad")
    (watched / "event4").touch()  # the directory itself is watched now
    assert pump(mgr) == [] and mgr.next_deadline() == pytest.approx(100.3)
    mgr.close()


def test_the_generation_changes_on_every_open_and_loss():
    """The daemon's loop re-registers every fd when it changes (see Daemon._sync_fds)."""
    bus, changes = FakeBus(), []
    mgr = manager(bus, [DeviceSpec(name="USB Keypad")], changes)
    seen = [mgr.generation]
    bus.plug("/dev/input/event3", "USB Keypad")
    mgr.rescan()
    seen.append(mgr.generation)
    mgr.rescan()  # nothing new
    seen.append(mgr.generation)
    bus.unplug("/dev/input/event3")
    pump(mgr)
    seen.append(mgr.generation)
    assert seen[0] != seen[1] == seen[2] != seen[3] and changes[-1][:2] == ("USB Keypad", False)
    mgr.close()
