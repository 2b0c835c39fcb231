"""A keypad on a real (virtual) USB bus inside the VM: a configfs HID gadget bound to a dummy_hcd UDC.

The kernel enumerates it like a plugged-in device: usbcore → usbhid → hid-generic → hid-input → evdev, and
udev gives it /dev/input/by-id links. Keys are HID input reports written to /dev/hidg*; the LEDs the host
side sets come back as HID output reports read from it; unplug and replug are UDC unbind and bind.
"""

import glob
import os
import select
import subprocess
import time

ROOT = "/sys/kernel/config/usb_gadget"
# The boot keyboard report descriptor of the kernel's Documentation/usb/gadget_hid.rst (most cheap USB
# keypads use it): an 8-byte input report, and 5 LED bits out (bit 0 NumLock, 1 CapsLock, 2 ScrollLock).
DESC = bytes(
    [
        0x05,
        0x01,
        0x09,
        0x06,
        0xA1,
        0x01,
        0x05,
        0x07,
        0x19,
        0xE0,
        0x29,
        0xE7,
        0x15,
        0x00,
        0x25,
        0x01,
        0x75,
        0x01,
        0x95,
        0x08,
        0x81,
        0x02,
        0x95,
        0x01,
        0x75,
        0x08,
        0x81,
        0x03,
        0x95,
        0x05,
        0x75,
        0x01,
        0x05,
        0x08,
        0x19,
        0x01,
        0x29,
        0x05,
        0x91,
        0x02,
        0x95,
        0x01,
        0x75,
        0x03,
        0x91,
        0x03,
        0x95,
        0x06,
        0x75,
        0x08,
        0x15,
        0x00,
        0x25,
        0x65,
        0x05,
        0x07,
        0x19,
        0x00,
        0x29,
        0x65,
        0x81,
        0x00,
        0xC0,
    ]
)
# HID usage IDs (keyboard page) of the keypad keys used here.
USAGE = {"KP8": 0x60, "KP2": 0x5A, "KP6": 0x5E, "KP4": 0x5C, "KP5": 0x5D, "KPPLUS": 0x57, "KPMINUS": 0x56}


def put(path, value):
    with open(path, "wb" if isinstance(value, bytes) else "w") as f:
        f.write(value)


def load_modules():
    """dummy_hcd with two UDCs (two independent buses), the HID gadget function and the host's HID drivers."""
    subprocess.run(
        "modprobe -r dummy_hcd 2>/dev/null; modprobe dummy_hcd num=2 && modprobe usb_f_hid "
        "&& modprobe usbhid && modprobe hid_generic",
        shell=True,
        check=True,
    )
    if not os.path.isdir(ROOT):
        subprocess.run(["mount", "-t", "configfs", "none", "/sys/kernel/config"], check=True)
    return sorted(os.listdir("/sys/class/udc"))


class Gadget:
    """One USB HID keyboard gadget (vendor:product, product string, serial) pluggable into a UDC."""

    def __init__(self, name, vid, pid, product, serial):
        self.g = f"{ROOT}/{name}"
        os.makedirs(f"{self.g}/strings/0x409", exist_ok=True)
        put(f"{self.g}/idVendor", f"0x{vid:04x}")
        put(f"{self.g}/idProduct", f"0x{pid:04x}")
        put(f"{self.g}/bcdUSB", "0x0200")
        put(f"{self.g}/strings/0x409/manufacturer", "Virtual")
        put(f"{self.g}/strings/0x409/product", product)
        self.serial(serial)
        os.makedirs(f"{self.g}/configs/c.1/strings/0x409", exist_ok=True)
        put(f"{self.g}/configs/c.1/strings/0x409/configuration", "keypad")
        put(f"{self.g}/configs/c.1/MaxPower", "100")
        fn = f"{self.g}/functions/hid.usb0"
        os.makedirs(fn, exist_ok=True)
        put(f"{fn}/protocol", "1")
        put(f"{fn}/subclass", "1")
        put(f"{fn}/report_length", "8")
        put(f"{fn}/report_desc", DESC)
        os.symlink(fn, f"{self.g}/configs/c.1/hid.usb0")
        self.minor = int(open(f"{fn}/dev").read().split(":")[1])
        self.hidg = None

    def serial(self, serial):
        """Change the serial number (only while unplugged): the by-id link changes with it."""
        put(f"{self.g}/strings/0x409/serialnumber", serial)

    def plug(self, udc):
        put(f"{self.g}/UDC", udc)

    def open(self, timeout=10.0):
        """Open /dev/hidgN once the host has configured the device (writes fail before that)."""
        path = f"/dev/hidg{self.minor}"
        end = time.monotonic() + timeout
        while not os.path.exists(path) and time.monotonic() < end:
            time.sleep(0.05)
        self.hidg = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def unplug(self):
        """Close /dev/hidgN first: with Debian's 6.1 kernels, closing it after an unbind/rebind cycle hits a
        refcount underflow in f_hid (cdev_put) and a kernel BUG."""
        if self.hidg is not None:
            os.close(self.hidg)
            self.hidg = None
        put(f"{self.g}/UDC", "\n")

    def report(self, usage=0):
        """Send one input report: `usage` held down, or (0) every key up."""
        data = bytes([0, 0, usage, 0, 0, 0, 0, 0])
        end = time.monotonic() + 5.0
        while True:
            try:
                os.write(self.hidg, data)
                return
            except BlockingIOError:  # the host has not polled the previous report yet
                if time.monotonic() > end:
                    raise
                time.sleep(0.01)

    def key(self, name, hold_s=0.05):
        self.report(USAGE[name])
        time.sleep(hold_s)
        self.report(0)

    def leds(self, timeout=2.0, settle_s=0.25):
        """The last LED output report (a bit mask) of a burst arriving within timeout; None if none came."""
        last, end = None, time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.hidg], [], [], left)[0]:
                return last
            try:
                last = os.read(self.hidg, 8)[0]
            except BlockingIOError:
                continue
            end = min(end, time.monotonic() + settle_s)  # take the last of a burst


def by_id(pattern="*"):
    return sorted(os.path.basename(p) for p in glob.glob(f"/dev/input/by-id/{pattern}"))
