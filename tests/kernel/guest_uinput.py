"""Guest (inside the VM, as root, udev running): UInput keypad, ShuttleXpress and macro pad against the daemon.

Prints one JSON object of observed facts on stdout; tests/kernel/test_uinput.py judges them. The daemons
run as `octopanel run --dry-run` subprocesses under the service's user and groups.
"""

import grp
import os
import re
import signal
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as g  # noqa: E402
from evdev import InputDevice, UInput  # noqa: E402
from evdev import ecodes as e

KEYPAD = "Virtual UInput Keypad"
KEYPAD_KEYS = [
    e.KEY_KP0,
    e.KEY_KP1,
    e.KEY_KP2,
    e.KEY_KP3,
    e.KEY_KP4,
    e.KEY_KP5,
    e.KEY_KP6,
    e.KEY_KP7,
    e.KEY_KP8,
    e.KEY_KP9,
    e.KEY_KPENTER,
    e.KEY_KPDOT,
    e.KEY_KPPLUS,
    e.KEY_KPMINUS,
    e.KEY_KPASTERISK,
    e.KEY_KPSLASH,
    e.KEY_NUMLOCK,
    e.KEY_UP,
    e.KEY_DOWN,
    e.KEY_LEFT,
    e.KEY_RIGHT,
    e.KEY_PAGEUP,
    e.KEY_PAGEDOWN,
    e.KEY_HOME,
    e.KEY_END,
    e.KEY_INSERT,
    e.KEY_DELETE,
]
SHUTTLE = "Contour Design ShuttleXpress"
MACRO = "Virtual Macro Pad"
PRINTER_PAD = "Virtual Printer Pad"  # read by a daemon that talks to a real OctoPrint (not a dry run)
PRINTER_URL = os.environ.get("KERNEL_PRINTER_URL")
KNOB = "Virtual Events Knob"  # for `octopanel events`: no daemon here reads (and grabs) it


# name, capabilities, USB vendor and product, phys: the keypad, shuttle, macro pad, printer pad and knob.
DEVICES = (
    (KEYPAD, {e.EV_KEY: KEYPAD_KEYS, e.EV_LED: [e.LED_NUML, e.LED_CAPSL, e.LED_SCROLLL]}, 0x1234, 0x5678, "keypad"),
    (
        SHUTTLE,
        {e.EV_KEY: [e.BTN_4, e.BTN_5, e.BTN_6, e.BTN_7, e.BTN_8], e.EV_REL: [e.REL_DIAL, e.REL_WHEEL]},
        0x0B33,
        0x0020,
        "shuttle",
    ),
    (
        MACRO,
        {e.EV_KEY: [e.KEY_1, e.KEY_2, e.KEY_3, e.KEY_VOLUMEUP, e.KEY_VOLUMEDOWN, e.KEY_MUTE]},
        0x1189,
        0x8890,
        "macro",
    ),
    (PRINTER_PAD, {e.EV_KEY: KEYPAD_KEYS, e.EV_LED: [e.LED_NUML]}, 0x1234, 0x9999, "printer"),
    (KNOB, {e.EV_KEY: [e.KEY_KP8, e.KEY_UP], e.EV_REL: [e.REL_DIAL]}, 0x1234, 0x7777, "knob"),
)


def make_devices():
    """The DEVICES as uinput devices on the USB bus, in that order."""
    return tuple(
        UInput(caps, name=name, vendor=vendor, product=product, bustype=e.BUS_USB, phys=f"uinput-{phys}/input0")
        for name, caps, vendor, product, phys in DEVICES
    )


def node_facts(dev):
    g.udevadm("settle", "-t", "30")
    st = os.stat(dev.path)
    g.fact(
        "keypad_node",
        {"path": dev.path, "group": grp.getgrgid(st.st_gid).gr_name, "mode": oct(stat.S_IMODE(st.st_mode))},
    )


def devices_and_events(ui, dev):
    for label, groups in (("devices_in_group_input", "input"), ("devices_without_group_input", None)):
        out = subprocess.run(
            g.as_user([g.OCTOPANEL, "devices"], groups), capture_output=True, text=True, env=g.env(), timeout=60
        )
        g.fact(label, {"rc": out.returncode, "stdout": out.stdout, "stderr": out.stderr})
    ev = g.Proc(g.as_user([g.OCTOPANEL, "events", dev.path]), "events")
    ready = ev.wait_for(r"press keys", timeout=60) is not None
    for code in (e.KEY_KP8, e.KEY_UP):
        g.tap(ui, code)
    ui.write(e.EV_REL, e.REL_DIAL, 1)
    ui.syn()
    ev.wait_for(r"REL_DIAL", timeout=10)
    rc = ev.stop(signal.SIGINT)  # as Ctrl-C
    g.fact("events", {"ready": ready, "lines": ev.since(0), "rc": rc})


def jogs(proc, start):
    """Bodies of the jog requests the dry run printed since line `start`."""
    return [
        body
        for _, path, body in g.requests_in(proc.since(start))
        if path.endswith("printhead") and body.get("command") == "jog"
    ]


def keypad_session(ui, other, kp):
    g.fact("keypad_using", kp.wait_for(r"using .*Keypad", timeout=60))
    time.sleep(0.5)
    g.drain(other, 0.3)
    g.tap(ui, e.KEY_KP4)
    g.fact("other_reader_while_key_held", g.drain(other, 1.5))
    ui.write(e.EV_KEY, e.KEY_KP5, 0)
    ui.syn()
    time.sleep(1.0)
    g.drain(other, 0.3)
    m = kp.mark()
    g.tap(ui, e.KEY_KP8)
    g.fact("other_reader_after_release", g.drain(other, 1.5))
    try:
        other.grab()
        other.ungrab()
        g.fact("other_grab", "granted")
    except OSError as exc:
        g.fact("other_grab", exc.errno)
    kp.wait_for(r'"y": ', m, 10)
    g.wait_settled(kp)
    g.fact("press_KP8", jogs(kp, m))

    for name in ("KEY_UP", "KEY_LEFT", "KEY_RIGHT", "KEY_DOWN"):
        m = kp.mark()
        g.tap(ui, e.ecodes[name])
        kp.wait_for(r'"command": "jog"', m, 10)
        g.wait_settled(kp, 0.5)
        g.fact(f"press_{name}", jogs(kp, m))
    m = kp.mark()
    g.tap(ui, e.KEY_PAGEUP)
    kp.wait_for(r'"command": "jog"', m, 10)
    g.wait_settled(kp, 0.5)
    g.fact("press_KEY_PAGEUP", jogs(kp, m))

    # repeat: held for HELD_S, released; each repeat is a jog of one step
    held_s = 1.5
    m = kp.mark()
    ui.write(e.EV_KEY, e.KEY_KP6, 1)
    ui.syn()
    time.sleep(held_s)
    ui.write(e.EV_KEY, e.KEY_KP6, 0)
    ui.syn()
    g.wait_settled(kp, 1.0)
    g.fact("repeat_KP6", {"held_s": held_s, "jogs": jogs(kp, m)})
    # hold vs press on the extrude key, double vs single on the fan key
    for label, code, hold_s in (("hold_KP1", e.KEY_KP1, 1.4), ("press_KP1", e.KEY_KP1, 0.05)):
        m = kp.mark()
        g.tap(ui, code, hold_s)
        g.wait_settled(kp, 0.6)
        g.fact(label, g.requests_in(kp.since(m)))
    m = kp.mark()
    g.tap(ui, e.KEY_KP0)
    time.sleep(0.08)
    g.tap(ui, e.KEY_KP0)
    time.sleep(0.6)  # past double_s (0.35 s): a single press fires only then
    g.wait_settled(kp, 0.5)
    g.fact("double_KP0", g.requests_in(kp.since(m)))
    m = kp.mark()
    g.tap(ui, e.KEY_KP0)
    time.sleep(0.6)  # past double_s (0.35 s): a single press fires only then
    g.wait_settled(kp, 0.5)
    g.fact("press_KP0", g.requests_in(kp.since(m)))

    # LEDs per step, read back with EVIOCGLED; the daemon sets them on the uinput device.
    led_by_step = {"1": g.leds(other)}
    for _ in range(3):
        m = kp.mark()
        g.tap(ui, e.KEY_KPPLUS)
        line = kp.wait_for(r"mode step: \S+", m, 10)
        time.sleep(0.5)
        step = line.rsplit(None, 1)[-1] if line else "?"
        led_by_step[step] = g.leds(other)
    g.fact("leds_by_step", led_by_step)
    other.close()


def shuttle_session(ui, sx):
    g.fact("shuttle_using", sx.wait_for(r"using .*Shuttle", timeout=60))
    m = sx.mark()
    for value in (10, 11, 12):  # the dial is a counter: the first value is the reference, then +1 +1
        ui.write(e.EV_REL, e.REL_DIAL, value)
        ui.syn()
        time.sleep(0.1)
    sx.wait_for(r'"x": ', m, 10)
    g.wait_settled(sx)
    g.fact("dial_x_plus_2", jogs(sx, m))
    g.tap(ui, e.BTN_4)  # axis x -> y
    time.sleep(0.3)
    m = sx.mark()
    for value in (11, 10, 9):  # -1 -1 -1 on the new axis
        ui.write(e.EV_REL, e.REL_DIAL, value)
        ui.syn()
        time.sleep(0.1)
    sx.wait_for(r'"y": ', m, 10)
    g.wait_settled(sx)
    g.fact("dial_y_minus_3", jogs(sx, m))


def macro_session(ui, mp):
    g.fact("macro_using", mp.wait_for(r"using .*Macro", timeout=60))
    m = mp.mark()
    for _ in range(3):
        g.tap(ui, e.KEY_VOLUMEUP)
        time.sleep(0.1)
    g.tap(ui, e.KEY_VOLUMEDOWN)
    mp.wait_for(r'"z": ', m, 10)
    g.wait_settled(mp)
    g.fact("knob_up3_down1", jogs(mp, m))
    g.tap(ui, e.KEY_2)  # step 0.1 -> 1, once the double window is over
    time.sleep(0.7)
    m = mp.mark()
    g.tap(ui, e.KEY_VOLUMEUP)
    mp.wait_for(r'"z": ', m, 10)
    g.wait_settled(mp)
    g.fact("knob_up_after_step", jogs(mp, m))


def printer_daemon():
    """The shipped keymap for the pad with id 1234:9999 only, against OctoPrint at KERNEL_PRINTER_URL."""
    text = open(os.path.join(g.REPO, "etc/keymap.yaml")).read()
    text, n = re.subn(r'- name: "\*\[Kk\]eypad\*"', '- id: "1234:9999"', text)
    with open("/tmp/printer-keymap.yaml", "w") as f:
        f.write(text)
    argv = [
        g.OCTOPANEL,
        "run",
        "--no-control",
        "--keymap",
        "/tmp/printer-keymap.yaml",
        "--url",
        PRINTER_URL,
    ]
    # The key in the environment, as the README advises: a command line is logged here (and shown by ps).
    return g.Proc(g.as_user(argv), "printer", {"OCTOPRINT_API_KEY": os.environ["KERNEL_PRINTER_KEY"]})


def printer_session(ui, pr):
    """Key presses on a real node → the daemon → OctoPrint; the host reads its serial.log afterwards."""
    g.fact("printer_using", pr.wait_for(r"using .*Printer Pad", timeout=60))
    g.fact("printer_answers", pr.wait_for(r"OctoPrint answers", timeout=30))
    done = []
    for code, pattern in (
        (e.KEY_KP8, r"jogged y=1\b"),
        (e.KEY_KPPLUS, r"mode step: 10"),
        (e.KEY_KP4, r"jogged x=-10\b"),
        (e.KEY_KP7, r"homed"),
    ):
        m = pr.mark()
        g.tap(ui, code)
        done.append(pr.wait_for(pattern, m, 20))
    g.wait_settled(pr, 1.0)
    g.fact("printer_done", done)


def main():
    g.add_service_user()
    keypad, shuttle, macro, pad, knob = make_devices()
    dev = g.find_node(KEYPAD)
    other = InputDevice(dev.path)  # a second reader, as a console or another program would be
    # A key held while the daemon starts: its grab must wait for the release.
    keypad.write(e.EV_KEY, e.KEY_KP5, 1)
    keypad.syn()
    kp = g.daemon("etc/keymap.yaml", "keypad")
    sx = g.daemon("etc/examples/shuttlexpress.yaml", "shuttle")
    mp = g.daemon("etc/examples/macropad.yaml", "macro")
    daemons = {"keypad": kp, "shuttle": sx, "macro": mp}
    if PRINTER_URL:
        daemons["printer"] = printer_daemon()
    node_facts(dev)
    devices_and_events(knob, g.find_node(KNOB))  # while the daemons start up
    keypad_session(keypad, other, kp)
    shuttle_session(shuttle, sx)
    macro_session(macro, mp)
    if PRINTER_URL:
        printer_session(pad, daemons["printer"])
    g.fact("exit_codes", {name: proc.stop() for name, proc in daemons.items()})
    for ui in (keypad, shuttle, macro, pad, knob):
        ui.close()


if __name__ == "__main__":
    g.guarded(main)
