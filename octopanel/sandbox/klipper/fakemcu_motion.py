# Copyright (c) 2026 the octopanel authors. MIT licence (see LICENSE).
"""fakemcu's motion: steppers with 32-bit step timing, and endstops that close a few steps into a homing move.

An endstop armed by endstop_home "closes" TRIGGER_AFTER_STEPS steps into the move at that step's clock, fires
its trsync, which stops every stepper bound to it (stepper_stop_on_trigger), as the firmware does: klippy's
real homing code runs, including its "still triggered" check.
"""

from typing import Any

from octopanel.sandbox.klipper.fakemcu_link import McuLink
from octopanel.sandbox.klipper.fakemcu_model import Stepper

TRIGGER_AFTER_STEPS = 3  # a homing endstop "closes" this many steps into the move
SETTLE_ABOVE = 64  # commit a stepper's past steps once this many runs are queued, to bound memory


class MotionMCU(McuLink):
    """The stepper, endstop and trsync commands of fakemcu_proto.COMMANDS."""

    def reset_motion(self) -> None:
        self.steppers: dict[int, Stepper] = {}
        self.trsync: dict[int, dict[str, Any]] = {}  # oid -> can_trigger, reason, report_at, report_ticks, fire_at
        self.endstops: dict[int, dict[str, Any]] = {}  # oid -> armed, arm_clock, rest_ticks, trsync, reason, ...

    # --- steppers ----------------------------------------------------------------------------------
    def cmd_config_stepper(self, oid: int, **kw: int) -> None:
        self.steppers[oid] = Stepper()

    def cmd_set_next_step_dir(self, oid: int, dir: int) -> None:
        self.steppers[oid].dir = dir

    def cmd_reset_step_clock(self, oid: int, clock: int) -> None:
        s = self.steppers[oid]
        s.clock = clock
        s.need_reset = False

    def cmd_queue_step(self, oid: int, interval: int, count: int, add: int) -> None:
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

    def cmd_stepper_get_position(self, oid: int) -> None:
        pos = self.steppers[oid].position_at(self.clock64())
        self.log("-> stepper_position", oid, pos)
        self.send("stepper_position", oid=oid, pos=pos)

    def cmd_stepper_stop_on_trigger(self, oid: int, trsync_oid: int) -> None:
        self.steppers[oid].trsync = trsync_oid

    # --- endstops and trsync -----------------------------------------------------------------------
    def cmd_config_endstop(self, oid: int, pin: int, pull_up: int) -> None:
        self.endstops[oid] = {"armed": False, "trsync": None, "pin_value": 0, "trigger_clock": 0, "rest_ticks": 0}

    def cmd_config_trsync(self, oid: int) -> None:
        self.trsync[oid] = {"can_trigger": 0, "reason": 0, "report_at": None, "report_ticks": 0, "fire_at": None}

    def cmd_trsync_start(self, oid: int, report_clock: int, report_ticks: int, expire_reason: int) -> None:
        self.trsync[oid] = {
            "can_trigger": 1,
            "reason": 0,
            "fire_at": None,
            "report_at": self.ext(report_clock) if report_ticks else None,
            "report_ticks": report_ticks,
        }

    def _trigger(self, oid: int, reason: int, at: int) -> None:
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

    def cmd_trsync_trigger(self, oid: int, reason: int) -> None:
        self._trigger(oid, reason, self.clock64())

    def cmd_endstop_home(
        self,
        oid: int,
        clock: int,
        sample_ticks: int,
        sample_count: int,
        rest_ticks: int,
        pin_value: int,
        trsync_oid: int,
        trigger_reason: int,
    ) -> None:
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

    def cmd_endstop_query_state(self, oid: int) -> None:
        es = self.endstops.get(oid, {})
        next_clock = (es.get("trigger_clock", 0) + es.get("rest_ticks", 0)) & 0xFFFFFFFF
        self.send("endstop_state", oid=oid, homing=1 if es.get("armed") else 0, next_clock=next_clock, pin_value=0)

    def tick_motion(self) -> None:
        """Fire the trsyncs whose trigger clock has come, send due trsync reports, bound the step queues."""
        now_clock = self.clock64()
        for oid, ts in list(self.trsync.items()):
            if ts.get("fire_at") is not None and now_clock >= ts["fire_at"]:
                self._trigger(oid, ts["fire_reason"], ts["fire_at"])
            elif ts.get("can_trigger") and ts.get("report_at") is not None and now_clock >= ts["report_at"]:
                ts["report_at"] += ts["report_ticks"]
                self.send("trsync_state", oid=oid, can_trigger=1, trigger_reason=0, clock=now_clock & 0xFFFFFFFF)
        for s in self.steppers.values():
            if len(s.pending) > SETTLE_ABOVE:
                s.settle(now_clock)
