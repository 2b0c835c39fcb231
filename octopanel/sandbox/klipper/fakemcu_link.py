# Copyright (c) 2026 the octopanel authors. MIT licence (see LICENSE).
"""fakemcu's transport: a pty linked where klippy looks, message blocks in and out, acks, and the run loop.

A block is (length, sequence, payload, CRC16-CCITT, 0x7e); a wrong sequence number or a bad CRC gets a nak
(an ack of the expected sequence) and the host retransmits. Subclasses handle each command as cmd_<name>().
"""

import os
import select
import signal
import sys
import time
import tty
from typing import Any

from octopanel.sandbox.klipper.fakemcu_proto import (
    CLOCK_FREQ,
    IN_SHUTDOWN,
    SIGNED_TYPES,
    STRING_TYPES,
    build_dictionary,
    compressed,
    crc16,
    dec_int,
    enc_int,
    parse_format,
)

MIN_BLOCK, MAX_BLOCK = 5, 64
SYNC = 0x7E
POLL_S = 0.005


class McuLink:
    """The protocol end of a simulated MCU; tick() runs between reads, dispatch() calls cmd_<name>(**args)."""

    def __init__(self, link: str, verbose: bool = False) -> None:
        self.verbose = verbose
        self.dictionary = build_dictionary()
        self.zdict = compressed(self.dictionary)
        self.by_id = {mid: parse_format(fmt) for fmt, mid in self.dictionary["commands"].items()}
        self.resp = {}
        for fmt, mid in self.dictionary["responses"].items():
            name, params = parse_format(fmt)
            self.resp[name] = (mid, params)
        self.start = time.monotonic()
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.slave = slave  # kept open: the master never sees EIO when klippy closes its end
        self.link = link
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(os.ttyname(slave), link)
        os.set_blocking(self.master, False)
        self.inbuf = bytearray()
        self.next_seq = 0
        self.need_sync = False
        self.is_shutdown = 0
        self.shutdown_reason = 0

    # --- the clock: 64 bits here, 32 bits on the wire ----------------------------------------------
    def clock64(self) -> int:
        return int((time.monotonic() - self.start) * CLOCK_FREQ)

    def clock(self) -> int:
        return self.clock64() & 0xFFFFFFFF

    def ext(self, c32: int) -> int:
        """The 64-bit clock nearest to now that has these low 32 bits."""
        now = self.clock64()
        diff = (c32 - now) & 0xFFFFFFFF
        if diff & 0x80000000:
            diff -= 1 << 32
        return now + diff

    # --- output ------------------------------------------------------------------------------------
    def send(self, name: str, **kw: Any) -> None:
        mid, params = self.resp[name]
        payload: list[int] = []
        enc_int(payload, mid)
        for pname, t in params:
            v = kw[pname]
            if t in STRING_TYPES:
                payload.append(len(v))
                payload.extend(v)
            else:
                enc_int(payload, int(v))
        self._send_block(payload)

    def _send_block(self, payload: list[int]) -> None:
        block = [len(payload) + 5, 0x10 | (self.next_seq & 0x0F)] + payload
        crc = crc16(block)
        block += [crc >> 8, crc & 0xFF, SYNC]
        try:
            os.write(self.master, bytes(block))
        except OSError:  # klippy is gone or not reading: a real MCU's bytes are lost too
            pass

    def ack(self) -> None:
        self._send_block([])

    def log(self, *words: object) -> None:
        if self.verbose:
            print("fakemcu:", *words, file=sys.stderr, flush=True)

    # --- input -------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.inbuf += data
        buf = self.inbuf
        while buf:
            if self.need_sync:
                i = buf.find(SYNC)
                if i < 0:
                    del buf[:]
                    return
                del buf[: i + 1]
                self.need_sync = False
                continue
            if buf[0] == SYNC:
                del buf[:1]
                continue
            if len(buf) < MIN_BLOCK:
                return
            mlen = buf[0]
            if mlen < MIN_BLOCK or mlen > MAX_BLOCK or (buf[1] & ~0x0F) != 0x10:
                self.need_sync = True
                self.ack()
                continue
            if len(buf) < mlen:
                return
            block = bytes(buf[:mlen])
            if block[-1] != SYNC or crc16(block[:-3]) != (block[-3] << 8 | block[-2]):
                self.need_sync = True
                self.ack()
                continue
            del buf[:mlen]
            seq = block[1] & 0x0F
            if seq != self.next_seq:
                self.ack()  # a nak: the host retransmits
                continue
            self.next_seq = (seq + 1) & 0x0F
            self.dispatch(block[2:-3])
            self.ack()

    def dispatch(self, payload: bytes) -> None:
        pos = 0
        while pos < len(payload):
            mid, pos = dec_int(payload, pos, False)
            entry = self.by_id.get(mid)
            if entry is None:
                self.shutdown("Invalid command")
                return
            name, params = entry
            args: dict[str, int | bytes] = {}
            for pname, t in params:
                if t in STRING_TYPES:
                    ln = payload[pos]
                    args[pname] = bytes(payload[pos + 1 : pos + 1 + ln])
                    pos += 1 + ln
                else:
                    args[pname], pos = dec_int(payload, pos, t in SIGNED_TYPES)
            if name != "get_clock":
                self.log("<-", name, args)
            if self.is_shutdown and name not in IN_SHUTDOWN:
                self.send("is_shutdown", static_string_id=self.shutdown_reason)
                continue
            getattr(self, "cmd_" + name, self.cmd_ignore)(**args)

    def cmd_ignore(self, **kw: Any) -> None:
        pass

    def shutdown(self, reason: str) -> None:
        raise NotImplementedError

    def tick(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then remove the link."""
        stop = []
        signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
        signal.signal(signal.SIGINT, lambda *a: stop.append(1))
        try:
            while not stop:
                readable, _, _ = select.select([self.master], [], [], POLL_S)
                if readable:
                    try:
                        data = os.read(self.master, 4096)
                    except (BlockingIOError, InterruptedError):
                        data = b""
                    except OSError:
                        time.sleep(0.05)
                        data = b""
                    if data:
                        self.feed(data)
                self.tick()
        finally:
            try:
                os.unlink(self.link)
            except OSError:
                pass
