# Copyright (c) 2026 the octopanel authors. MIT licence (see LICENSE).
"""fakemcu's simulated hardware: a first-order thermal model per heater, and steppers with 32-bit step timing."""

import math
import time
from collections.abc import Callable, Iterator

# Heater wiring of the simulated board: heater output pin -> its thermistor pin (config.py's printer.cfg uses these).
HEATER_PINS = {"gpio20": "analog0", "gpio21": "analog1"}
PULLUP = 4700.0
# Thermistor: a plain beta model; printer.cfg declares the same one as
# [thermistor fakemcu] temperature1: 25, resistance1: 100000, beta: 3950.
R25, BETA = 100000.0, 3950.0
AMBIENT_C = 25.0
FULL_POWER_RISE_C = 300.0  # full power settles at 325 °C ...
TAU_S = 8.0  # ... with this time constant: 200 °C in about 12 s under printer.cfg's PID (Kp 20, Ki 3, Kd 20)


class Heater:
    """First-order thermal model of one heater and its thermistor."""

    def __init__(self) -> None:
        self.temp = AMBIENT_C
        self.duty = 0.0
        self.last = time.monotonic()

    def step(self, now: float) -> None:
        dt = min(max(now - self.last, 0.0), 1.0)
        self.last = now
        target = AMBIENT_C + FULL_POWER_RISE_C * self.duty
        self.temp += (target - self.temp) * (1.0 - math.exp(-dt / TAU_S))

    def adc(self, sample_count: int, adc_max: int) -> int:
        """The summed ADC reading of sample_count samples, through the thermistor and its pull-up."""
        r = R25 * math.exp(BETA * (1.0 / (self.temp + 273.15) - 1.0 / 298.15))
        frac = r / (r + PULLUP)
        return max(0, min(0xFFFF, int(round(frac * adc_max * sample_count))))


class Stepper:
    """A stepper's queued step runs ([start_clock, interval, count, add, sign]) and its committed position."""

    def __init__(self) -> None:
        self.position = 0  # committed steps
        self.clock = 0  # 32-bit time of the last scheduled step
        self.dir = 0
        self.pending: list[list[int]] = []
        self.need_reset = False
        self.trsync: int | None = None

    @staticmethod
    def step_times(entry: list[int], limit: int | None = None) -> Iterator[int]:
        start, interval, count, add, _sign = entry
        t = start
        iv = interval
        for _ in range(count):
            t += iv
            if limit is not None and t > limit:
                return
            yield t
            iv += add

    @staticmethod
    def end_clock(entry: list[int]) -> int:
        start, interval, count, add, _sign = entry
        return start + count * interval + add * count * (count - 1) // 2

    def queue(self, interval: int, count: int, add: int, ext: Callable[[int], int]) -> list[int] | None:
        """Queue steps; the firmware's clock arithmetic is 32-bit, so the first step time is taken modulo 2**32
        and placed next to the current clock by ext()."""
        if self.need_reset:
            return None
        first = ext((self.clock + interval) & 0xFFFFFFFF)
        entry = [first - interval, interval, count, add, 1 if self.dir else -1]
        self.clock = self.end_clock(entry) & 0xFFFFFFFF
        self.pending.append(entry)
        return entry

    def settle(self, now: int) -> None:
        """Commit every step scheduled at or before `now`."""
        keep = []
        for e in self.pending:
            if self.end_clock(e) <= now:
                self.position += e[4] * e[2]
            else:
                keep.append(e)
        self.pending = keep

    def position_at(self, now: int) -> int:
        self.settle(now)
        pos = self.position
        for e in self.pending:
            pos += e[4] * sum(1 for _ in self.step_times(e, now))
        return pos

    def stop(self, at: int) -> None:
        """The firmware's stepper_stop(): steps after `at` never happen, and the next queue_step needs a reset."""
        self.position = self.position_at(at)
        self.pending = []
        self.need_reset = True
