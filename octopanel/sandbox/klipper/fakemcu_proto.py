# Copyright (c) 2026 the octopanel authors. MIT licence (see LICENSE).
"""fakemcu's side of Klipper's MCU protocol: the data dictionary it serves, VLQ integers, CRC16, message formats.

Written from Klipper's protocol document (docs/Protocol.md); no Klipper code is used.
"""

import json
import zlib
from typing import Any

CLOCK_FREQ = 50_000_000
ADC_MAX = 4095
PWM_MAX = 255

# msgid -> format. Commands first, then responses. Ids stay below 96 so that each takes one byte in every
# klippy version.
COMMANDS = [
    "identify offset=%u count=%c",
    "get_uptime",
    "get_clock",
    "get_config",
    "allocate_oids count=%c",
    "finalize_config crc=%u",
    "emergency_stop",
    "config_reset",
    "clear_shutdown",
    "debug_nop",
    # steppers
    "config_stepper oid=%c step_pin=%c dir_pin=%c invert_step=%c step_pulse_ticks=%u",
    "queue_step oid=%c interval=%u count=%hu add=%hi",
    "set_next_step_dir oid=%c dir=%c",
    "reset_step_clock oid=%c clock=%u",
    "stepper_get_position oid=%c",
    "stepper_stop_on_trigger oid=%c trsync_oid=%c",
    # endstops and trsync
    "config_endstop oid=%c pin=%c pull_up=%c",
    "endstop_home oid=%c clock=%u sample_ticks=%u sample_count=%c rest_ticks=%u pin_value=%c trsync_oid=%c"
    " trigger_reason=%c",
    "endstop_query_state oid=%c",
    "config_trsync oid=%c",
    "trsync_start oid=%c report_clock=%u report_ticks=%u expire_reason=%c",
    "trsync_set_timeout oid=%c clock=%u",
    "trsync_trigger oid=%c reason=%c",
    # outputs
    "config_digital_out oid=%c pin=%u value=%c default_value=%c max_duration=%u",
    "set_digital_out_pwm_cycle oid=%c cycle_ticks=%u",
    "queue_digital_out oid=%c clock=%u on_ticks=%u",
    "update_digital_out oid=%c value=%c",
    "set_digital_out pin=%u value=%c",
    "config_pwm_out oid=%c pin=%u cycle_ticks=%u value=%hu default_value=%hu max_duration=%u",
    "queue_pwm_out oid=%c clock=%u value=%hu",
    "set_pwm_out pin=%u cycle_ticks=%u value=%hu",
    # ADC
    "config_analog_in oid=%c pin=%u",
    "query_analog_in oid=%c clock=%u sample_ticks=%u sample_count=%c rest_ticks=%u min_value=%hu max_value=%hu"
    " range_check_count=%c",
]
RESPONSES = [
    "identify_response offset=%u data=%.*s",
    "uptime high=%u clock=%u",
    "clock clock=%u",
    "config is_config=%c crc=%u is_shutdown=%c move_count=%hu",
    "shutdown clock=%u static_string_id=%hu",
    "is_shutdown static_string_id=%hu",
    "starting",
    "stats count=%u sum=%u sumsq=%u",
    "stepper_position oid=%c pos=%i",
    "endstop_state oid=%c homing=%c next_clock=%u pin_value=%c",
    "trsync_state oid=%c can_trigger=%c trigger_reason=%c clock=%u",
    "analog_in_state oid=%c next_clock=%u value=%hu",
]
SHUTDOWN_REASONS = {
    "Command request": 1,
    "Shutdown cleared when not shutdown": 2,
    "config_reset only available when shutdown": 3,
    "Invalid command": 4,
    "ADC out of range": 5,
}
# Commands real firmware runs while shut down (HF_IN_SHUTDOWN).
IN_SHUTDOWN = {
    "identify",
    "get_uptime",
    "get_clock",
    "get_config",
    "emergency_stop",
    "config_reset",
    "clear_shutdown",
    "debug_nop",
    "stepper_get_position",
    "endstop_query_state",
}
STRING_TYPES = ("%.*s", "%*s")
SIGNED_TYPES = ("%i", "%hi")


def build_dictionary() -> dict[str, Any]:
    """The data dictionary klippy reads through `identify`: every message's id, the clock, the pins."""
    commands: dict[str, int] = {}
    responses: dict[str, int] = {}
    msgid = 2
    for fmt in COMMANDS:
        if fmt.startswith("identify "):
            commands[fmt] = 1
            continue
        commands[fmt] = msgid
        msgid += 1
    for fmt in RESPONSES:
        if fmt.startswith("identify_response "):
            responses[fmt] = 0
            continue
        responses[fmt] = msgid
        msgid += 1
    assert msgid < 96
    return {
        "version": "octopanel-fakemcu-1",
        "build_versions": "python",
        "app": "Klipper",
        "license": "MIT",
        "config": {
            "MCU": "linux",
            "CLOCK_FREQ": CLOCK_FREQ,
            "STATS_SUMSQ_BASE": 256,
            "ADC_MAX": ADC_MAX,
            "PWM_MAX": PWM_MAX,
        },
        "enumerations": {
            "pin": {"gpio0": [0, 64], "analog0": [64, 8]},
            "static_string_id": SHUTDOWN_REASONS,
            "thermocouple_type": {},
            "spi_bus": {},
            "i2c_bus": {},
            "bus_pins_spi": {},
        },
        "commands": commands,
        "responses": responses,
        "output": {},
    }


def compressed(dictionary: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(dictionary).encode())


def enc_int(out: list[int], v: int) -> None:
    """Append v as a Klipper VLQ (one to five bytes, sign-extended from the first)."""
    if v >= 0xC000000 or v < -0x4000000:
        out.append((v >> 28) & 0x7F | 0x80)
    if v >= 0x180000 or v < -0x80000:
        out.append((v >> 21) & 0x7F | 0x80)
    if v >= 0x3000 or v < -0x1000:
        out.append((v >> 14) & 0x7F | 0x80)
    if v >= 0x60 or v < -0x20:
        out.append((v >> 7) & 0x7F | 0x80)
    out.append(v & 0x7F)


def dec_int(buf: bytes, pos: int, signed: bool) -> tuple[int, int]:
    """(value, next position) of the VLQ at buf[pos]; unsigned values wrap to 32 bits as in the firmware."""
    c = buf[pos]
    pos += 1
    v = c & 0x7F
    if (c & 0x60) == 0x60:
        v |= -0x20
    while c & 0x80:
        c = buf[pos]
        pos += 1
        v = (v << 7) | (c & 0x7F)
    if not signed:
        v &= 0xFFFFFFFF
    return v, pos


def crc16(buf: bytes | list[int]) -> int:
    """CRC16-CCITT of a block's header and payload, as the protocol document defines it."""
    crc = 0xFFFF
    for data in buf:
        data ^= crc & 0xFF
        data ^= (data & 0x0F) << 4
        crc = ((data << 8) | (crc >> 8)) ^ (data >> 4) ^ (data << 3)
        crc &= 0xFFFF
    return crc


def parse_format(fmt: str) -> tuple[str, list[tuple[str, str]]]:
    """'queue_step oid=%c interval=%u' -> ('queue_step', [('oid', '%c'), ('interval', '%u')])."""
    name, *parts = fmt.split()
    return name, [(key, kind) for key, _, kind in (p.partition("=") for p in parts)]


def pin_number(name: str) -> int:
    if name.startswith("analog"):
        return 64 + int(name[6:])
    return int(name[4:])
