"""Fake event nodes on real pipes (the lister/opener seam of DeviceManager), decoded by evdev's own code."""

import errno
import os
import struct
import time

import evdev
from evdev import ecodes as e

from octopanel.input.devices import DeviceInfo
from octopanel.input.evdev_source import EvdevSource
from octopanel.input.replay import NATIVE_FORMAT


def raw(sec, usec, type_, code, value, fmt=NATIVE_FORMAT):
    return struct.pack(fmt, sec, usec, type_, code, value)


def press_frame(t, code, value=1, fmt=NATIVE_FORMAT):
    sec, usec = divmod(round(t * 1e6), 1_000_000)
    return raw(sec, usec, e.EV_KEY, code, value, fmt) + raw(sec, usec, e.EV_SYN, e.SYN_REPORT, 0, fmt)


def pipe_device(path="pipe"):
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    device = evdev.InputDevice.__new__(evdev.InputDevice)  # skip the ioctls of __init__
    device.fd, device.path, device.name = read_end, path, "pipe"
    return device, write_end


class FakeNode:
    """The kernel side of one event node: its key state, and a pipe per open file of it."""

    def __init__(self, path, name):
        self.path, self.name = path, name
        self.held, self.handles, self.gone, self.monotonic = set(), [], False, True
        self.leds = {}  # LED name -> lit, as the daemon last set it

    def open(self):
        if self.gone:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", self.path)
        handle = FakeSource(self)
        self.handles.append(handle)
        return handle

    def emit(self, code, value, t=None):
        t = time.monotonic() if t is None else t
        # The kernel's key state changes when the event happens, not when it is read.
        (self.held.add if value else self.held.discard)(code)
        for handle in self.handles:
            if not handle.closed:
                os.write(handle.write_end, press_frame(t, code, value))

    def unplug(self):
        self.gone = True
        for handle in self.handles:
            os.close(handle.write_end)  # the reader then sees its end: DeviceGone

    @property
    def grabbed(self):
        return any(h.grabbed and not h.closed for h in self.handles)

    @property
    def closed(self):
        return all(h.closed for h in self.handles)

    def fileno(self):
        return next(h.fileno() for h in reversed(self.handles) if not h.closed)


class FakeSource(EvdevSource):
    """One open file of a FakeNode: a pipe read and decoded by the real EvdevSource code."""

    def __init__(self, node):
        device, self.write_end = pipe_device(node.path)
        device.name = node.name
        super().__init__(device)
        self.node, self.monotonic, self.grabbed, self.closed = node, node.monotonic, False, False

    def grab(self):
        self.grabbed = True

    def active_keys(self):
        return sorted(self.node.held)

    def set_led(self, name, on):
        self.node.leds[name] = on

    def close(self):
        self.closed = True
        super().close()


class FakeBus:
    """The lister and opener seam: nodes come and go as the test plugs and unplugs them."""

    def __init__(self):
        self.nodes, self.scans = {}, 0

    def plug(self, path, name, phys="", by_id=(), vid=0x05F3, pid=0x0081):
        node = FakeNode(path, name)
        self.nodes[path] = (DeviceInfo(path, name, vid, pid, phys, tuple(by_id)), node)
        return node

    def unplug(self, path):
        self.nodes.pop(path)[1].unplug()

    def lister(self):
        self.scans += 1
        return [info for info, _ in self.nodes.values()]

    def opener(self, path):
        if path not in self.nodes:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return self.nodes[path][1].open()
