"""Guest (inside the VM, as root, udev running): USB gadget keypads, the udev rule, hotplug, HID LED reports.

Prints one JSON object of observed facts on stdout; tests/kernel/test_usb.py judges them. Daemons run as
`octopanel run --dry-run` subprocesses under the service's user and groups.
"""

import grp
import os
import re
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gadget  # noqa: E402
import guestlib as g  # noqa: E402

CYCLES = int(os.environ.get("KERNEL_CYCLES", "20"))
KEYPAD_LINK = "usb-Virtual_USB_Keypad_{}-event-kbd"
RULE = "udev/70-octopanel.rules"


def install_rule():
    """The shipped rule, with the keypad line enabled as its comment says to ("remove the leading #")."""
    text = open(os.path.join(g.REPO, RULE)).read()
    line = '#ENV{ID_VENDOR_ID}=="04d9", ENV{ID_MODEL_ID}=="1203"'
    g.fact("rule_has_keypad_line", line in text)
    with open("/etc/udev/rules.d/70-octopanel.rules", "w") as f:
        f.write(text.replace(line, line[1:]))
    g.udevadm("control", "--reload")


def node_of(link):
    """(path, group, mode) of the event node behind a by-id link, once udev has handled its event."""
    end = time.monotonic() + 20  # the link comes with the device's uevent, once the host has enumerated it
    while not os.path.exists(f"/dev/input/by-id/{link}") and time.monotonic() < end:
        time.sleep(0.05)
    g.udevadm("settle", "-t", "30")
    path = os.path.realpath(f"/dev/input/by-id/{link}")
    if not os.path.exists(path):
        return None
    st = os.stat(path)
    return {"path": path, "group": grp.getgrgid(st.st_gid).gr_name, "mode": oct(stat.S_IMODE(st.st_mode))}


def jogs(proc, start, end=None):
    """Bodies of the jog requests the dry run printed in lines start..end of proc's output."""
    lines = proc.since(start)
    if end is not None:
        lines = lines[: end - start]
    return [body for _, path, body in g.requests_in(lines) if path.endswith("printhead")]


def first_index(proc, pattern, start):
    """Index (into proc.lines) of the first line from start on matching pattern, or None."""
    line = proc.wait_for(pattern, start, 15)
    if line is None:
        return None
    return start + proc.since(start).index(line)


def plug_and_use(kp, udc, daemon):
    """Plug; seconds until the daemon says it uses the keypad (None if it does not), then open /dev/hidg."""
    m, t = daemon.mark(), time.monotonic()
    kp.plug(udc)
    ok = daemon.wait_for(r"using .*Keypad", m, 20)
    took = round(time.monotonic() - t, 2) if ok else None
    kp.open()
    return took


def unplug_while_repeating(kp, daemon):
    """Hold KP6 until repeats come, unplug with it held; the jogs before and after the daemon's 'lost' line.

    At step 1, so that the hold is far below its distance cap (max_outstanding_mm: 50 repeats) when the
    unplug comes: a repeat outliving the unplug would show, not be hidden by the cap."""
    m = daemon.mark()
    kp.report(gadget.USAGE["KP6"])
    for _ in range(3):  # the press and two repeats have gone out
        daemon.wait_for(r'"x": ', daemon.mark() if _ else m, 10)
    u = daemon.mark()
    kp.unplug()
    lost = first_index(daemon, r"lost .*Keypad", u)
    time.sleep(1.5)  # ten repeat periods: ample time for a leftover repeat or queued jog to show
    g.fact(
        "unplug_held_key",
        {
            "lost_seen": lost is not None,
            "jogs_before": jogs(daemon, m, lost),
            "jogs_after_lost": jogs(daemon, lost) if lost is not None else None,
        },
    )


def hotplug(kp, udcs, d):
    g.fact("waiting_before_plug", d.wait_for(r"waiting for", timeout=60))
    g.fact("first_plug_s", plug_and_use(kp, udcs[0], d))
    g.fact("keypad_node", node_of(KEYPAD_LINK.format("0001")))
    out = subprocess.run(g.as_user([g.OCTOPANEL, "devices"]), capture_output=True, text=True, env=g.env(), timeout=60)
    g.fact("devices", {"rc": out.returncode, "stdout": out.stdout})
    g.fact("led_report_step_1", kp.leds())
    unplug_while_repeating(kp, d)
    g.fact("replug_s", plug_and_use(kp, udcs[0], d))
    m = d.mark()
    kp.key("KPPLUS")
    d.wait_for(r"mode step: 10", m, 10)
    g.fact("led_report_step_10", kp.leds())
    m = d.mark()
    kp.key("KP8")
    d.wait_for(r'"y": ', m, 10)
    g.wait_settled(d, 0.5)
    g.fact("jog_step_10", jogs(d, m))
    m = d.mark()
    kp.unplug()
    d.wait_for(r"lost .*Keypad", m, 15)
    cycles = []
    for cycle in range(1, CYCLES + 1):
        # odd cycles: another serial, so another by-id path; even cycles: back at the first one
        serial = "0002" if cycle % 2 else "0001"
        kp.serial(serial)
        took = plug_and_use(kp, udcs[0], d)
        led = kp.leds()
        m = d.mark()
        kp.key("KP8")
        d.wait_for(r'"y": ', m, 10)
        g.wait_settled(d, 0.3)
        links = gadget.by_id("usb-Virtual_USB_Keypad_*-event-kbd")
        jog = jogs(d, m)
        m = d.mark()
        kp.unplug()
        lost = d.wait_for(r"lost .*Keypad", m, 15) is not None
        cycles.append({"serial": serial, "using_s": took, "by_id": links, "led": led, "jogs": jog, "lost": lost})
        g.log(f"cycle {cycle}: {cycles[-1]}")
    g.fact("cycles", cycles)
    g.fact("keypad_daemon_rc", d.stop())


def by_id_keymap():
    """The shipped keymap naming one by-id path, without a grab: it runs beside the first daemon, which grabs
    (so it reads nothing until that one has exited), to save a start-up under emulation."""
    text = open(os.path.join(g.REPO, "etc/keymap.yaml")).read()
    link = "/dev/input/by-id/" + KEYPAD_LINK.format("0001")
    text, n = re.subn(r'- name: "\*\[Kk\]eypad\*"\s*(#.*)?\n\s*grab: true', f"- path: {link}\n    grab: false", text)
    # Its LEDs off: LEDs belong to the device, and the first daemon's are the ones under test.
    text, m = re.subn(r"leds: mode", 'leds: "off"', text)
    with open("/tmp/byid-keymap.yaml", "w") as f:
        f.write(text)
    return n == 1 and m == 1


def by_id_daemon(kp, udcs, d, edited):
    """A keymap naming one by-id path takes that keypad only, and takes it again on replug."""
    d.wait_for(r"waiting for", timeout=60)
    kp.serial("0002")
    m = d.mark()
    kp.plug(udcs[0])
    taken_other = d.wait_for(r"using ", m, 4)
    kp.unplug()
    time.sleep(0.5)
    runs = []
    for _ in range(2):
        kp.serial("0001")
        took = plug_and_use(kp, udcs[0], d)
        m = d.mark()
        kp.key("KP8")
        d.wait_for(r'"y": ', m, 10)
        g.wait_settled(d, 0.4)
        runs.append({"using_s": took, "jogs": jogs(d, m)})
        kp.unplug()
        d.wait_for(r"lost ", m, 15)
    g.fact("by_id_daemon", {"path_in_keymap": edited, "took_other_serial": taken_other, "runs": runs, "rc": d.stop()})


def main():
    g.add_service_user()
    install_rule()
    udcs = gadget.load_modules()
    g.fact("udcs", udcs)
    # A second device stays plugged on the other bus throughout (so /dev/input/by-id never goes away): it
    # has the ShuttleXpress's IDs, which the shipped rule gives to the group octopanel as it stands.
    wheel = gadget.Gadget("wheel", 0x0B33, 0x0020, "Jog Wheel", "0009")
    wheel.plug(udcs[1])
    g.fact("shuttle_ids_node", node_of("usb-Virtual_Jog_Wheel_0009-event-kbd"))
    kp = gadget.Gadget("keypad", 0x04D9, 0x1203, "USB Keypad", "0001")
    edited = by_id_keymap()
    first = g.daemon("etc/keymap.yaml", "keypad")
    second = g.daemon("/tmp/byid-keymap.yaml", "by-id")
    hotplug(kp, udcs, first)
    by_id_daemon(kp, udcs, second, edited)
    wheel.unplug()


if __name__ == "__main__":
    g.guarded(main)
