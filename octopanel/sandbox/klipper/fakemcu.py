# Copyright (c) 2026 the octopanel authors. MIT licence (see LICENSE).
"""A stand-in Klipper micro-controller for the sandbox: `python -m octopanel.sandbox.klipper.fakemcu --link PATH`.

It opens a pty linked at PATH (give klippy that path as `[mcu] serial:`; under /tmp/klipper_host_ klippy opens
it as a pipe, like the Linux-process MCU) and answers what a printer needs: clock sync, the config and shutdown
state machine (so FIRMWARE_RESTART works), steppers and endstops (fakemcu_motion: an endstop closes a few steps
into any homing move, so klippy's real homing code runs), PWM heaters read back through a thermal model with the
firmware's ADC range check, and periodic stats. Any other command is "Unknown command" at klippy's connect.
Written from Klipper's documented protocol; no Klipper code is used.
"""

import argparse
import json
import time
from typing import Any

from octopanel.sandbox.klipper.fakemcu_model import HEATER_PINS, Heater
from octopanel.sandbox.klipper.fakemcu_motion import MotionMCU
from octopanel.sandbox.klipper.fakemcu_proto import ADC_MAX, CLOCK_FREQ, PWM_MAX, SHUTDOWN_REASONS, pin_number

STATS_EVERY_S = 5.0


class FakeMCU(MotionMCU):
    """The simulated board: one handler per command of fakemcu_proto.COMMANDS that needs a state or an answer."""

    def __init__(self, link: str, verbose: bool = False) -> None:
        super().__init__(link, verbose)
        self.heaters = {pin_number(a): Heater() for a in HEATER_PINS.values()}
        self.heater_of_pin = {pin_number(o): pin_number(a) for o, a in HEATER_PINS.items()}
        self.reset_state()
        self.last_stats = time.monotonic()

    def reset_state(self) -> None:
        self.is_config = 0
        self.crc = 0
        self.is_shutdown = 0
        self.shutdown_reason = 0
        self.oid_count = 0
        self.reset_motion()
        self.out_pin: dict[int, int] = {}  # output oid -> pin number
        self.pwm_cycle: dict[int, int] = {}  # output oid -> cycle ticks (software PWM)
        self.adc_pin: dict[int, int] = {}  # adc oid -> pin number
        # adc oid -> [next_time, sample_count, rest_s, rest_ticks, min, max, range_count, bad]
        self.adc_query: dict[int, list[Any]] = {}
        for h in self.heaters.values():
            h.duty = 0.0

    def shutdown(self, reason: str) -> None:
        if self.is_shutdown:
            return
        self.is_shutdown = 1
        self.shutdown_reason = SHUTDOWN_REASONS[reason]
        for h in self.heaters.values():
            h.duty = 0.0
        self.adc_query.clear()
        self.send("shutdown", clock=self.clock(), static_string_id=self.shutdown_reason)

    # --- identification, clock, config and shutdown ------------------------------------------------
    def cmd_identify(self, offset: int, count: int) -> None:
        self.send("identify_response", offset=offset, data=self.zdict[offset : offset + count])

    def cmd_get_uptime(self) -> None:
        c = self.clock64()
        self.send("uptime", high=c >> 32, clock=c & 0xFFFFFFFF)

    def cmd_get_clock(self) -> None:
        self.send("clock", clock=self.clock())

    def cmd_get_config(self) -> None:
        self.send("config", is_config=self.is_config, crc=self.crc, is_shutdown=self.is_shutdown, move_count=1024)

    def cmd_allocate_oids(self, count: int) -> None:
        self.oid_count = count

    def cmd_finalize_config(self, crc: int) -> None:
        self.is_config = 1
        self.crc = crc

    def cmd_emergency_stop(self) -> None:
        self.shutdown("Command request")

    def cmd_config_reset(self) -> None:
        if not self.is_shutdown:
            self.shutdown("config_reset only available when shutdown")
            return
        self.reset_state()

    def cmd_clear_shutdown(self) -> None:
        if not self.is_shutdown:
            self.shutdown("Shutdown cleared when not shutdown")
            return
        self.is_shutdown = 0

    # --- outputs: a heater pin's duty cycle drives its thermal model --------------------------------
    def cmd_config_digital_out(self, oid: int, pin: int, value: int, default_value: int, max_duration: int) -> None:
        self.out_pin[oid] = pin

    def cmd_config_pwm_out(
        self, oid: int, pin: int, cycle_ticks: int, value: int, default_value: int, max_duration: int
    ) -> None:
        self.out_pin[oid] = pin

    def cmd_set_digital_out_pwm_cycle(self, oid: int, cycle_ticks: int) -> None:
        self.pwm_cycle[oid] = cycle_ticks

    def _set_duty(self, oid: int, duty: float) -> None:
        adc = self.heater_of_pin.get(self.out_pin.get(oid, -1))
        if adc is not None:
            h = self.heaters[adc]
            h.step(time.monotonic())
            h.duty = max(0.0, min(1.0, duty))

    def cmd_queue_digital_out(self, oid: int, clock: int, on_ticks: int) -> None:
        cycle = self.pwm_cycle.get(oid)
        self._set_duty(oid, on_ticks / float(cycle) if cycle else (1.0 if on_ticks else 0.0))

    def cmd_update_digital_out(self, oid: int, value: int) -> None:
        self._set_duty(oid, 1.0 if value else 0.0)

    def cmd_queue_pwm_out(self, oid: int, clock: int, value: int) -> None:
        self._set_duty(oid, value / float(PWM_MAX))

    def cmd_config_analog_in(self, oid: int, pin: int) -> None:
        self.adc_pin[oid] = pin

    def cmd_query_analog_in(
        self,
        oid: int,
        clock: int,
        sample_ticks: int,
        sample_count: int,
        rest_ticks: int,
        min_value: int,
        max_value: int,
        range_check_count: int,
    ) -> None:
        if sample_count == 0:
            self.adc_query.pop(oid, None)
            return
        start = max(0.0, (self.ext(clock) - self.clock64()) / CLOCK_FREQ)
        self.adc_query[oid] = [
            time.monotonic() + start,
            sample_count,
            rest_ticks / CLOCK_FREQ,
            rest_ticks,
            min_value,
            max_value,
            range_check_count,
            0,
        ]

    # --- periodic ------------------------------------------------------------------------------------
    def tick(self) -> None:
        self.tick_motion()
        now = time.monotonic()
        now_clock = self.clock64()
        for oid, q in list(self.adc_query.items()):
            if now < q[0]:
                continue
            q[0] = now + q[2]
            h = self.heaters.get(self.adc_pin.get(oid, -1)) or Heater()
            h.step(now)
            value = h.adc(q[1], ADC_MAX)
            if q[6] and not (q[4] <= value <= q[5]):
                q[7] += 1
                if q[7] >= q[6]:
                    self.shutdown("ADC out of range")
                    return
            else:
                q[7] = 0
            self.send("analog_in_state", oid=oid, next_clock=(now_clock + q[3]) & 0xFFFFFFFF, value=value)
        if now - self.last_stats > STATS_EVERY_S:
            self.last_stats = now
            self.send("stats", count=1000, sum=CLOCK_FREQ // 100, sumsq=1000)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--link", required=True, help="symlink to create for the pty, e.g. /tmp/klipper_host_test")
    ap.add_argument("--dict-out", help="also write the data dictionary (JSON) here")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every command received")
    a = ap.parse_args(argv)
    mcu = FakeMCU(a.link, a.verbose)
    if a.dict_out:
        with open(a.dict_out, "w") as f:
            json.dump(mcu.dictionary, f, indent=1)
    print("fakemcu: ready on", a.link, flush=True)
    mcu.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
