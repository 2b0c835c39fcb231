# Copyright (c) 2026 the octopanel authors. MIT licence (see LICENSE).
"""The sandbox's configuration files: printer.cfg (a printer wired to fakemcu), moonraker.conf, test G-code."""

from pathlib import Path

MIN_EXTRUDE_TEMP_C = 170.0
MAX_EXTRUDER_C = 300.0
MAX_BED_C = 130.0
# The print start_print() uploads: back and forth on X at Y and Z that stay put (so that a test can see a jog
# that should not have happened); 100 mm at 100 mm/s, about 1 s per move, long enough to pause behind.
PRINT_Y, PRINT_Z = 100.0, 5.0
PRINT_X = (20.0, 120.0)
PRINT_FEED = 6000

# Every pin is on fakemcu: heater gpio20 reads analog0, heater gpio21 reads analog1 (fakemcu_model.HEATER_PINS).
# homing_retract_dist 0: one homing move per axis, G28 in 1.9 s instead of 5.4 s, ending at 0, 0, 0.
PRINTER_CFG = """\
# A simulated cartesian printer on fakemcu (octopanel/sandbox/klipper); written by KlipperSim.
[mcu]
serial: {link}

[printer]
kinematics: cartesian
max_velocity: 300
max_accel: 3000
max_z_velocity: 5
max_z_accel: 100

[stepper_x]
step_pin: gpio0
dir_pin: gpio1
enable_pin: !gpio2
microsteps: 16
rotation_distance: 40
endstop_pin: ^gpio3
position_endstop: 0
position_max: 235
homing_speed: 50
homing_retract_dist: 0

[stepper_y]
step_pin: gpio4
dir_pin: gpio5
enable_pin: !gpio6
microsteps: 16
rotation_distance: 40
endstop_pin: ^gpio7
position_endstop: 0
position_max: 235
homing_speed: 50
homing_retract_dist: 0

[stepper_z]
step_pin: gpio8
dir_pin: !gpio9
enable_pin: !gpio10
microsteps: 16
rotation_distance: 8
endstop_pin: ^gpio11
position_endstop: 0.0
position_max: 250
homing_retract_dist: 0

[thermistor fakemcu]
temperature1: 25
resistance1: 100000
beta: 3950

[extruder]
step_pin: gpio12
dir_pin: gpio13
enable_pin: !gpio14
microsteps: 16
rotation_distance: 33.5
nozzle_diameter: 0.400
filament_diameter: 1.750
heater_pin: gpio20
sensor_type: fakemcu
sensor_pin: analog0
control: pid
pid_Kp: 20
pid_Ki: 3
pid_Kd: 20
min_temp: 0
max_temp: {max_extruder:g}
min_extrude_temp: {min_extrude:g}

[heater_bed]
heater_pin: gpio21
sensor_type: fakemcu
sensor_pin: analog1
control: pid
pid_Kp: 20
pid_Ki: 3
pid_Kd: 20
min_temp: 0
max_temp: {max_bed:g}

[fan]
pin: gpio22

[virtual_sdcard]
path: {run}/gcodes

[pause_resume]

[display_status]

# A session-long sandbox must not lose its homing to the default 10-minute idle timeout (motors off).
[idle_timeout]
timeout: 86400
"""

MOONRAKER_CONF = """\
# Written by KlipperSim: Moonraker on 127.0.0.1 only, no auth from there, no network calls of its own.
[server]
host: 127.0.0.1
port: {port}
klippy_uds_address: {run}/klippy.sock

[authorization]
trusted_clients:
  127.0.0.0/8

[machine]
provider: none
validate_service: False

[announcements]
enable_moonlight: False

[file_manager]
enable_object_processing: False

[data_store]
gcode_store_size: 10000
"""


def printer_cfg(run: Path, link: str, include: str | None = None) -> str:
    text = PRINTER_CFG.format(
        link=link, run=run, min_extrude=MIN_EXTRUDE_TEMP_C, max_extruder=MAX_EXTRUDER_C, max_bed=MAX_BED_C
    )
    if include is not None:
        text += f"\n[include {include}]\n"
    return text


def moonraker_conf(run: Path, port: int) -> str:
    return MOONRAKER_CONF.format(run=run, port=port)


def print_gcode(n_moves: int) -> str:
    """A job of n_moves back-and-forth moves on X (about 1 s each), with no extrusion and no homing."""
    lines = ["G90", f"G1 X{PRINT_X[0]:g} Y{PRINT_Y:g} Z{PRINT_Z:g} F{PRINT_FEED}"]
    lines += [f"G1 X{PRINT_X[(i + 1) % 2]:g} F{PRINT_FEED}" for i in range(n_moves)]
    return "\n".join(lines) + "\n"
