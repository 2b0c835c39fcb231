# Copyright (c) 2026 the octopanel authors. MIT licence (see LICENSE).
"""A stand-in Klipper micro-controller for the sandbox: `python -m octopanel.sandbox.klipper.fakemcu --link PATH`.

It opens a pty linked at PATH (give klippy that path as `[mcu] serial:`; under /tmp/klipper_host_ klippy opens
it as a pipe, like the Linux-process MCU) and answers what a printer needs: clock sync, the config and shutdown
state machine (so FIRMWARE_RESTART works), steppers, endstops that close TRIGGER_AFTER_STEPS steps into any
homing move (so klippy's real homing code runs), PWM heaters read back through a thermal model with the
firmware's ADC range check, and periodic stats. Any other command is "Unknown command" at klippy's connect.
Written from Klipper's documented protocol; no Klipper code is used.
"""

import argparse
import json
import time

from octopanel.sandbox.klipper.fakemcu_link import McuLink
from octopanel.sandbox.klipper.fakemcu_model import HEATER_PINS, Heater, Stepper
from octopanel.sandbox.klipper.fakemcu_proto import ADC_MAX, CLOCK_FREQ, PWM_MAX, SHUTDOWN_REASONS, pin_number

TRIGGER_AFTER_STEPS = 3  # a homing endstop "closes" this many steps into the move
STATS_EVERY_S = 5.0
SETTLE_ABOVE = 64  # commit a stepper's past steps once this many runs are queued, to bound memory


class FakeMCU(McuLink):
    """The simulated board: one handler per command of fakemcu_proto.COMMANDS that needs a state or an answer."""

    def __init__(self, link, verbose=False):
        super().__init__(link, verbose)
        self.heaters = {pin_number(a): Heater() for a in HEATER_PINS.values()}
        self.heater_of_pin = {pin_number(o): pin_number(a) for o, a in HEATER_PINS.items()}
        self.reset_state()
        self.last_stats = time.monotonic()

    def reset_state(self):
        self.is_config = 0
        self.crc = 0
        self.is_shutdown = 0
        self.shutdown_reason = 0
        self.oid_count = 0
        self.steppers = {}  # oid -> Stepper
        self.out_pin = {}  # output oid -> pin number
        self.pwm_cycle = {}  # output oid -> cycle ticks (software PWM)
        self.adc_pin = {}  # adc oid -> pin number
        self.adc_query = {}  # adc oid -> [next_time, sample_count, rest_s, rest_ticks, min, max, range_count, bad]
        self.trsync = {}  # oid -> dict(can_trigger, reason, report_at, report_ticks, fire_at)
        self.endstops = {}  # oid -> dict(armed, arm_clock, rest_ticks, trsync, reason, ...)
        for h in self.heaters.values():
            h.duty = 0.0

    def shutdown(self, reason):
        if self.is_shutdown:
            return
        self.is_shutdown = 1
        self.shutdown_reason = SHUTDOWN_REASONS[reason]
        for h in self.heaters.values():
            h.duty = 0.0
        self.adc_query.clear()
        self.send("shutdown", clock=self.clock(), static_string_id=self.shutdown_reason)

    # --- identification, clock, config and shutdown ------------------------------------------------
    def cmd_identify(self, offset, count):
        self.send("identify_response", offset=offset, data=self.zdict[offset : offset + count])

    def cmd_get_uptime(self):
        c = self.clock64()
        self.send("uptime", high=c >> 32, clock=c & 0xFFFFFFFF)

    def cmd_get_clock(self):
        self.send("clock", clock=self.clock())

    def cmd_get_config(self):
        self.send("config", is_config=self.is_config, crc=self.crc, is_shutdown=self.is_shutdown, move_count=1024)

    def cmd_allocate_oids(self, count):
        self.oid_count = count

    def cmd_finalize_config(self, crc):
        self.is_config = 1
        self.crc = crc

    def cmd_emergency_stop(self):
        self.shutdown("Command request")

    def cmd_config_reset(self):
        if not self.is_shutdown:
            self.shutdown("config_reset only available when shutdown")
            return
        self.reset_state()

    def cmd_clear_shutdown(self):
        if not self.is_shutdown:
            self.shutdown("Shutdown cleared when not shutdown")
            return
        self.is_shutdown = 0

    # --- steppers ----------------------------------------------------------------------------------
    def cmd_config_stepper(self, oid, **kw):
        self.steppers[oid] = Stepper()

    def cmd_set_next_step_dir(self, oid, dir):
        self.steppers[oid].dir = dir

    def cmd_reset_step_clock(self, oid, clock):
        s = self.steppers[oid]
        s.clock = clock
        s.need_reset = False

    def cmd_queue_step(self, oid, interval, count, add):
        s = self.steppers[oid]
        entry = s.queue(interval, count, add, self.ext)
        if entry is None or s.trsync is None:
            return
        ts = self.trsync.get(s.trsync)
        if not ts or not ts["can_trigger"] or ts.get("fire_at") is not None:
            return
        for es in self.endstops.values():
            if not (es.get("armed") and es["trsync"] == s.trsync):
                continue
            for t in s.step_times(entry):
                if t > es["arm_clock"]:
                    es["steps_seen"] += 1
                    if es["steps_seen"] >= TRIGGER_AFTER_STEPS:
                        ts["fire_at"] = t
                        ts["fire_reason"] = es["reason"]
                        es["trigger_clock"] = t
                        es["armed"] = False
                        return

    def cmd_stepper_get_position(self, oid):
        pos = self.steppers[oid].position_at(self.clock64())
        self.log("-> stepper_position", oid, pos)
        self.send("stepper_position", oid=oid, pos=pos)

    def cmd_stepper_stop_on_trigger(self, oid, trsync_oid):
        self.steppers[oid].trsync = trsync_oid

    # --- endstops and trsync -----------------------------------------------------------------------
    def cmd_config_endstop(self, oid, pin, pull_up):
        self.endstops[oid] = {"armed": False, "trsync": None, "pin_value": 0, "trigger_clock": 0, "rest_ticks": 0}

    def cmd_config_trsync(self, oid):
        self.trsync[oid] = {"can_trigger": 0, "reason": 0, "report_at": None, "report_ticks": 0, "fire_at": None}

    def cmd_trsync_start(self, oid, report_clock, report_ticks, expire_reason):
        self.trsync[oid] = {
            "can_trigger": 1,
            "reason": 0,
            "fire_at": None,
            "report_at": self.ext(report_clock) if report_ticks else None,
            "report_ticks": report_ticks,
        }

    def _trigger(self, oid, reason, at):
        ts = self.trsync.setdefault(oid, {"report_ticks": 0})
        if ts.get("can_trigger"):
            ts.update(can_trigger=0, reason=reason, report_at=None, fire_at=None)
            for soid, s in self.steppers.items():
                if s.trsync == oid:
                    s.stop(at)
                    s.trsync = None
                    self.log(f"trsync {oid} fired (reason {reason}) at {at}, stepper {soid} stopped at {s.position}")
        self.send(
            "trsync_state", oid=oid, can_trigger=0, trigger_reason=ts.get("reason", reason), clock=at & 0xFFFFFFFF
        )

    def cmd_trsync_trigger(self, oid, reason):
        self._trigger(oid, reason, self.clock64())

    def cmd_endstop_home(
        self, oid, clock, sample_ticks, sample_count, rest_ticks, pin_value, trsync_oid, trigger_reason
    ):
        es = self.endstops.setdefault(oid, {})
        if sample_count == 0:
            es["armed"] = False
            return
        es.update(
            armed=True,
            arm_clock=self.ext(clock),
            rest_ticks=rest_ticks,
            trsync=trsync_oid,
            reason=trigger_reason,
            pin_value=pin_value,
            steps_seen=0,
            trigger_clock=self.ext(clock),
        )

    def cmd_endstop_query_state(self, oid):
        es = self.endstops.get(oid, {})
        next_clock = (es.get("trigger_clock", 0) + es.get("rest_ticks", 0)) & 0xFFFFFFFF
        self.send("endstop_state", oid=oid, homing=1 if es.get("armed") else 0, next_clock=next_clock, pin_value=0)

    # --- outputs: a heater pin's duty cycle drives its thermal model --------------------------------
    def cmd_config_digital_out(self, oid, pin, value, default_value, max_duration):
        self.out_pin[oid] = pin

    def cmd_config_pwm_out(self, oid, pin, cycle_ticks, value, default_value, max_duration):
        self.out_pin[oid] = pin

    def cmd_set_digital_out_pwm_cycle(self, oid, cycle_ticks):
        self.pwm_cycle[oid] = cycle_ticks

    def _set_duty(self, oid, duty):
        adc = self.heater_of_pin.get(self.out_pin.get(oid))
        if adc is not None:
            h = self.heaters[adc]
            h.step(time.monotonic())
            h.duty = max(0.0, min(1.0, duty))

    def cmd_queue_digital_out(self, oid, clock, on_ticks):
        cycle = self.pwm_cycle.get(oid)
        self._set_duty(oid, on_ticks / float(cycle) if cycle else (1.0 if on_ticks else 0.0))

    def cmd_update_digital_out(self, oid, value):
        self._set_duty(oid, 1.0 if value else 0.0)

    def cmd_queue_pwm_out(self, oid, clock, value):
        self._set_duty(oid, value / float(PWM_MAX))

    def cmd_config_analog_in(self, oid, pin):
        self.adc_pin[oid] = pin

    def cmd_query_analog_in(
        self, oid, clock, sample_ticks, sample_count, rest_ticks, min_value, max_value, range_check_count
    ):
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
    def tick(self):
        now = time.monotonic()
        now_clock = self.clock64()
        for oid, ts in list(self.trsync.items()):
            if ts.get("fire_at") is not None and now_clock >= ts["fire_at"]:
                self._trigger(oid, ts["fire_reason"], ts["fire_at"])
            elif ts.get("can_trigger") and ts.get("report_at") is not None and now_clock >= ts["report_at"]:
                ts["report_at"] += ts["report_ticks"]
                self.send("trsync_state", oid=oid, can_trigger=1, trigger_reason=0, clock=now_clock & 0xFFFFFFFF)
        for oid, q in list(self.adc_query.items()):
            if now < q[0]:
                continue
            q[0] = now + q[2]
            h = self.heaters.get(self.adc_pin.get(oid)) or Heater()
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
        for s in self.steppers.values():
            if len(s.pending) > SETTLE_ABOVE:
                s.settle(now_clock)


def main(argv=None):
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
