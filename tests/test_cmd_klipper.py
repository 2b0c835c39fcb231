"""Every 8xxx command on a real Klipper through a real Moonraker (the sandbox's simulated printer): what Klipper
received (toolhead position, heater targets, print_stats, the G-code log), what is refused, and why."""

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import BIN, LEAKY_PREFIXES
from daemonproc import DaemonProc, clean_env

from octopanel import settings as settings_mod
from octopanel.cli import main
from octopanel.errors import BadRequest
from octopanel.printers.moonraker.client import MoonrakerClient
from octopanel.printers.select import detect


def back_ready(sim, timeout=30.0):
    """Until Klipper is ready again after a restart (Moonraker answers 503 meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if sim.query("webhooks")["webhooks"]["state"] == "ready":
                return
        except Exception:  # noqa: BLE001  503 while Klipper's host reconnects
            pass
        assert time.monotonic() < deadline, "Klipper did not come back"
        time.sleep(0.1)


class Done:
    """What a command did: its exit code and output, as a subprocess would report them."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run(klipper, tmp_path, monkeypatch, capsys):
    """run(sim, tmp_path, "8jog", 1, 2, 3, spawn=False) -> Done: the 8xxx command (or `octopanel ...`) against
    the sim, with no key and no daemon; in-process through cli.main (the same path as the installed script
    after Python starts: ~0.2 s less each), or with spawn=True as the installed script itself."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    for name in [n for n in os.environ if n.startswith(LEAKY_PREFIXES)]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("OCTOPRINT_URL", klipper.url)
    monkeypatch.setenv("OCTOPANEL_NO_DAEMON", "1")

    def go(sim, _tmp, command, *args, env=None, spawn=False):
        prog = command if command.startswith("8") or command == "octopanel" else "8" + command
        argv = [str(a) for a in args]
        if spawn:
            full = {**os.environ, **(env or {})}
            proc = subprocess.run([str(BIN / prog), *argv], env=full, capture_output=True, text=True, timeout=60)
            return Done(proc.returncode, proc.stdout, proc.stderr)
        with monkeypatch.context() as m:
            for key, value in (env or {}).items():
                m.setenv(key, value)
            capsys.readouterr()
            code = main(argv, prog)
            out, err = capsys.readouterr()
        return Done(code, out, err)

    return go


def ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc.stdout


def refused(proc, code, text):
    assert proc.returncode == code, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert text in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def moved(before, after):
    return [round(b - a, 3) for a, b in zip(before, after)]


def test_motion_and_factors_reach_klipper(klipper, tmp_path, run):
    """Jog is one script inside SAVE/RESTORE_GCODE_STATE (never a bare G91 between a job's lines)."""
    start = klipper.position()
    mark = klipper.mark()
    ok(run(klipper, tmp_path, "8jog", 10, 5, 1, spawn=True))  # the installed script, once
    assert moved(start, klipper.position())[:3] == [10, 5, 1]
    sent = klipper.sent_since(mark)
    assert len([line for line in sent if "G91" in line or "OCTOPANEL_JOG" in line]) == 1, sent
    ok(run(klipper, tmp_path, "8g1", "X20 Y30"))
    assert klipper.position()[:2] == (20, 30)
    ok(run(klipper, tmp_path, "octopanel", "jog", "z=-0.5"))
    ok(run(klipper, tmp_path, "8g0", "X25"))
    assert klipper.position()[0] == 25 and round(klipper.position()[2] - start[2], 3) == 0.5
    # Out of range: the guard macro refuses it before G91 (without the macros, see the test below)
    refused(run(klipper, tmp_path, "8jog", 300, 0, 0), 1, "Klipper refused it: octopanel: jog refused: X would go to")
    assert klipper.query("gcode_move")["gcode_move"]["absolute_coordinates"] is True
    ok(run(klipper, tmp_path, "8speed", 150))
    ok(run(klipper, tmp_path, "8feed", 90))
    ok(run(klipper, tmp_path, "8speed", "+10"))  # a step counts from what Klipper reports (tuning())
    ok(run(klipper, tmp_path, "8babystep", 0.02))  # Klipper has no M290: SET_GCODE_OFFSET ... MOVE=1
    move = klipper.query("gcode_move")["gcode_move"]
    assert (move["speed_factor"], round(move["extrude_factor"], 3)) == (1.6, 0.9)
    assert round(move["homing_origin"][2], 3) == 0.02
    klipper.script("SET_GCODE_OFFSET Z=0 MOVE=1")
    mark = klipper.mark()
    ok(run(klipper, tmp_path, "8getpos"))
    ok(run(klipper, tmp_path, "8stepoff"))
    # Klipper has no M17 unless printer.cfg defines it: it says so only on its console, and octopanel reads it
    refused(run(klipper, tmp_path, "8stepon"), 1, "Klipper does not know M17 and ignored it")
    assert klipper.sent_since(mark)[:3] == ["M114", "M18", "M17"]


def test_temperatures_fan_messages_and_dwell(klipper, tmp_path, run):
    ok(run(klipper, tmp_path, "8settemp", 45))
    ok(run(klipper, tmp_path, "8settemp", "+5"))
    ok(run(klipper, tmp_path, "8setbed", 40))
    status = klipper.query("extruder", "heater_bed")
    assert (status["extruder"]["target"], status["heater_bed"]["target"]) == (50, 40)
    ok(run(klipper, tmp_path, "8settempr", 45))
    ok(run(klipper, tmp_path, "8setbedr", 35))
    status = klipper.query("extruder", "heater_bed")
    assert (status["extruder"]["target"], status["heater_bed"]["target"]) == (45, 35)
    assert float(ok(run(klipper, tmp_path, "8gettemp"))) == pytest.approx(status["extruder"]["temperature"], abs=5)
    assert float(ok(run(klipper, tmp_path, "8getbed"))) > 0
    assert json.loads(ok(run(klipper, tmp_path, "8gettemp_raw")))["tool0"]["target"] == 45
    assert json.loads(ok(run(klipper, tmp_path, "8getbed_raw")))["bed"]["target"] == 35
    refused(run(klipper, tmp_path, "8settemp", 400), 2, "above the maximum 285")  # octopanel's limit, nothing sent
    ok(run(klipper, tmp_path, "8alarmq", "t", 1, "--interval", 0.05))
    mark = klipper.mark()
    ok(run(klipper, tmp_path, "8fan", 128))
    ok(run(klipper, tmp_path, "8msg", "hello", "Klipper"))
    ok(run(klipper, tmp_path, "8g", "m117 raw"))
    ok(run(klipper, tmp_path, "8gmulti", "G4 P1", "M117 two"))
    ok(run(klipper, tmp_path, "8sleep", 0))
    ok(run(klipper, tmp_path, "8sleepms", 1))
    # M300 and M108 are Marlin's; Klipper knows them only as macros a printer.cfg may define
    refused(run(klipper, tmp_path, "8beep", 10), 1, "Klipper does not know M300")
    refused(run(klipper, tmp_path, "8click"), 1, "Klipper does not know M108")
    refused(run(klipper, tmp_path, "8alarm", "t", 1, "--interval", 0.05), 1, "Klipper does not know M300")
    # Klipper answers 200 to a command it does not know: octopanel reads its console and says so
    refused(run(klipper, tmp_path, "8g", "M999"), 1, "Klipper does not know M999 and ignored it")
    klipper.wait_idle()
    assert klipper.query("fan")["fan"]["speed"] == pytest.approx(128 / 255, abs=0.01)
    assert klipper.query("display_status")["display_status"]["message"] == "TWO"  # 8gmulti upper-cases
    assert klipper.sent_since(mark)[:5] == ["M106 S128", "M117 hello Klipper", "M117 RAW", "G4 P1", "M117 TWO"]
    ok(run(klipper, tmp_path, "8fan", "off"))


def test_without_an_m300_macro_a_beep_sends_nothing(klipper, tmp_path, run):
    """Klipper would answer 200 and log 'Unknown command' at every beep (each panel key's feedback)."""
    mark = klipper.mark()
    refused(run(klipper, tmp_path, "8beep", 10), 1, "Klipper does not know M300")
    refused(run(klipper, tmp_path, "8alarm", "t", 1, "--interval", 0.05), 1, "; nothing sent")
    assert klipper.sent_since(mark) == [] and klipper.responses_since(mark) == []


M300_MACRO = "\n[gcode_macro M300]\ngcode:\n  M117 beep {params.P|default(100)} {params.S|default(1000)}\n"


@pytest.mark.parametrize("own_klipper", [{"extra_cfg": M300_MACRO}], indirect=True)
def test_a_printer_cfg_m300_macro_makes_the_beep_work(own_klipper, tmp_path, run):
    mark = own_klipper.mark()
    env = {"OCTOPRINT_URL": own_klipper.url}
    assert "Beep:" not in ok(run(own_klipper, tmp_path, "8checkcfg", env=env))
    assert ok(run(own_klipper, tmp_path, "8beep", 100, 440, env=env)) == "M300 P100 S440 sent\n"
    assert own_klipper.sent_since(mark)[0] == "M300 P100 S440"
    assert own_klipper.query("display_status")["display_status"]["message"] == "beep 100 440"


MACROS_CFG = M300_MACRO + "\n[gcode_macro LOAD_FILAMENT]\ngcode:\n  M117 loading {params.LENGTH|default(50)}\n"


@pytest.mark.parametrize("own_klipper", [{"extra_cfg": MACROS_CFG}], indirect=True)
def test_klippers_own_commands_and_a_printer_cfg_macro_through_8g(own_klipper, tmp_path, run):
    """Mainsail #1186's keyboard macros: idle, a macro and Klipper's commands run, as Klipper reads them; the
    caps hold; while printing only the allow list goes (a babystep does), and nothing else reaches Klipper."""
    env = {"OCTOPRINT_URL": own_klipper.url}
    ok(run(own_klipper, tmp_path, "8g", "load_filament length=80", env=env))
    assert own_klipper.query("display_status")["display_status"]["message"] == "loading 80"
    ok(run(own_klipper, tmp_path, "8g", "SET_HEATER_TEMPERATURE HEATER=extruder TARGET=50", env=env))
    assert own_klipper.query("extruder")["extruder"]["target"] == 50
    mark = own_klipper.mark()
    refused(run(own_klipper, tmp_path, "8g", "SET_HEATER_TEMPERATURE HEATER=extruder TARGET=400", env=env), 2, "above")
    refused(run(own_klipper, tmp_path, "8g", "MY_2ND_MACRO", env=env), 2, "digits only at its end")
    assert own_klipper.sent_since(mark) == []
    refused(run(own_klipper, tmp_path, "8g", "NO_SUCH_MACRO", env=env), 1, "Klipper does not know NO_SUCH_MACRO")
    own_klipper.start_print()
    mark = own_klipper.mark()
    refused(run(own_klipper, tmp_path, "8g", "LOAD_FILAMENT", env=env), 1, "refused while it is printing")
    refused(run(own_klipper, tmp_path, "8g", "SET_GCODE_OFFSET Z=1", env=env), 1, "may carry only MOVE, Z_ADJUST")
    ok(run(own_klipper, tmp_path, "8g", "SET_GCODE_OFFSET Z_ADJUST=0.05 MOVE=1", env=env))
    assert own_klipper.query("gcode_move")["gcode_move"]["homing_origin"][2] == pytest.approx(0.05)
    sent = [line for line in own_klipper.sent_since(mark) if not line.startswith("G1 X")]  # the job's own moves
    assert sent == ["SET_GCODE_OFFSET Z_ADJUST=0.05 MOVE=1"], sent
    # a macro the user vouches for mid-print, in config.yaml
    config = tmp_path / "home" / ".config" / "octopanel" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("klipper_allowed_while_printing: [load_filament]\n")
    config.chmod(0o600)
    assert "Mid-print:     LOAD_FILAMENT (Klipper)  [from " in ok(run(own_klipper, tmp_path, "8checkcfg", env=env))
    ok(run(own_klipper, tmp_path, "8g", "LOAD_FILAMENT LENGTH=5", env=env))
    assert own_klipper.query("display_status")["display_status"]["message"] == "loading 5"
    assert own_klipper.query("print_stats")["print_stats"]["state"] == "printing"


def test_klipper_commands_are_refused_on_octoprint(octoprint, tmp_path):
    """OctoPrint's printer runs Marlin, which would not know them: exit 2, nothing sent."""
    env = clean_env(tmp_path, OCTOPRINT_URL=octoprint.url, OCTOPRINT_API_KEY=octoprint.api_key)
    mark = octoprint.mark()
    out = subprocess.run([str(BIN / "8g"), "SET_FAN_SPEED FAN=part SPEED=1"], env=env, capture_output=True, text=True)
    assert out.returncode == 2 and "is a Klipper command" in out.stderr, out.stderr
    assert octoprint.sent_since(mark) == []


def test_extrusion_is_refused_cold_and_works_hot(klipper, tmp_path, run):
    mark = klipper.mark()
    for command, args in (("8ex", [5]), ("8extrude", [5]), ("8fex", [5]), ("8eject", [])):
        refused(run(klipper, tmp_path, command, *args), 1, "too cold to extrude")
    assert klipper.sent_since(mark) == []  # octopanel refused: Klipper never saw a cold extrusion
    # --force skips octopanel's check, not Klipper's (its guard macro's, or its own without the macro)
    text = refused(run(klipper, tmp_path, "8ex", 5, "--force"), 1, "Klipper refused it: ")
    assert "octopanel: extrude refused: extruder is at" in text or "Extrude below minimum temp (See" in text
    klipper.heat_extruder()
    e0 = klipper.position()[3]
    ok(run(klipper, tmp_path, "8ex", 2))
    ok(run(klipper, tmp_path, "8extrude", -1))
    ok(run(klipper, tmp_path, "8fex", 1.5))
    assert round(klipper.position()[3] - e0, 3) == 2.5
    # eject's 800 mm pull is longer than Klipper's max_extrude_only_distance: Klipper's own words say so
    refused(run(klipper, tmp_path, "8eject"), 1, "Klipper refused it: Extrude only move too long")
    move = klipper.query("gcode_move")["gcode_move"]  # its G91 was undone although its G90 never ran
    assert move["absolute_coordinates"] is True and move["absolute_extrude"] is True


def test_files_and_a_job_from_select_to_cancel(klipper, tmp_path, run):
    """Upload, list, select, start; jog and homing refused mid-print; stateless pause and resume; cancel."""
    job = tmp_path / "octopanel-e2e.gcode"
    job.write_text("G90\n" + "G1 X100 F600\nG1 X90 F600\n" * 40)
    ok(run(klipper, tmp_path, "8upload", job))
    assert "octopanel-e2e.gcode" in ok(run(klipper, tmp_path, "8ls")).split()
    assert any(f["path"] == "octopanel-e2e.gcode" for f in json.loads(ok(run(klipper, tmp_path, "8ls_raw")))["files"])
    assert json.loads(ok(run(klipper, tmp_path, "8ll", "octopanel-e2e.gcode")))["size"] == job.stat().st_size
    refused(run(klipper, tmp_path, "8ll", "missing.gcode"), 1, "not found")
    ok(run(klipper, tmp_path, "8fselect", "octopanel-e2e.gcode"))
    assert klipper.query("print_stats")["print_stats"]["filename"] == "octopanel-e2e.gcode"
    ok(run(klipper, tmp_path, "8start"))
    klipper.wait_state("printing")
    assert "Printing" in ok(run(klipper, tmp_path, "8status"))
    assert json.loads(ok(run(klipper, tmp_path, "8getjob")))["job"]["file"]["name"] == "octopanel-e2e.gcode"
    mark = klipper.mark()
    for command, args in (("8jog", [0, 0, 1]), ("8home", []), ("8ex", [1, "--force"]), ("8g1", ["X1"])):
        refused(run(klipper, tmp_path, command, *args), 1, "refused: the printer is printing")
    refused(run(klipper, tmp_path, "8g", "G28"), 1, "while printing")  # gcode/policy.py's allow list
    ok(run(klipper, tmp_path, "8g", "M117 allowed"))
    refused(run(klipper, tmp_path, "8start"), 1, "refused: the printer is printing")
    assert klipper.sent_since(mark) == ["M117 ALLOWED"]
    # The gap between octopanel's state read and the move (a print may start in between) is closed inside
    # Klipper: the move goes through OCTOPANEL_JOG, which refuses mid-print. The client called directly, with
    # no state read first, shows the macro refusing, not octopanel.
    client = MoonrakerClient(klipper.url, None)
    try:
        assert {"OCTOPANEL_JOG", "OCTOPANEL_HOME", "OCTOPANEL_EXTRUDE"} <= client.macros()
        before = klipper.position()
        with pytest.raises(BadRequest, match="^Klipper refused it: octopanel: jog refused: printer is printing$"):
            client.jog(z=1)
        with pytest.raises(BadRequest, match="octopanel: home refused: printer is printing"):
            client.home()
        assert klipper.position()[2] == before[2]
    finally:
        client.close()
    assert "paused" in ok(run(klipper, tmp_path, "8pause"))
    klipper.wait_state("paused")
    assert "already paused" in ok(run(klipper, tmp_path, "8pause"))
    ok(run(klipper, tmp_path, "8jog", 0, 0, 1))  # allowed while paused, as on OctoPrint
    assert "resumed" in ok(run(klipper, tmp_path, "8resume"))
    klipper.wait_state("printing")
    assert "not paused" in ok(run(klipper, tmp_path, "8resume"))
    ok(run(klipper, tmp_path, "8pause_raw"))
    klipper.wait_state("paused")
    ok(run(klipper, tmp_path, "8pause_raw"))
    klipper.wait_state("printing")
    ok(run(klipper, tmp_path, "8cancel"))
    klipper.wait_state("cancelled")
    assert "operational" in ok(run(klipper, tmp_path, "8waitend", "--interval", 0.1))
    ok(run(klipper, tmp_path, "8runfile", job))  # uploaded as tmp.g and started
    klipper.wait_state("printing")
    assert klipper.query("print_stats")["print_stats"]["filename"] == "tmp.g"
    ok(run(klipper, tmp_path, "8settemp", 40))
    ok(run(klipper, tmp_path, "8xcancel"))
    assert klipper.state() == "cancelled" and klipper.query("extruder")["extruder"]["target"] == 40


def test_pause_and_resume_are_stateless_with_no_job(klipper, tmp_path, run):
    """Klipper's PAUSE with no job sets is_paused: octopanel reads print_stats first and sends nothing."""
    mark = klipper.mark()
    assert "nothing sent" in ok(run(klipper, tmp_path, "8pause"))
    assert "nothing sent" in ok(run(klipper, tmp_path, "8resume"))
    assert "nothing sent" in ok(run(klipper, tmp_path, "8cancel"))
    assert klipper.query("pause_resume")["pause_resume"]["is_paused"] is False
    assert klipper.sent_since(mark) == []


@pytest.mark.parametrize(
    "command, args, why",
    [
        ("8connect", [], "its own connection to the printer's board"),
        ("8disconnect", [], "its own connection"),
        ("8run", ["reset"], "no custom system commands"),
        ("8ListCmds", [], "no custom system commands"),
        ("8on", [], "no M80/M81"),
        ("8off", [], "no M80/M81"),
        ("8fan2", ["on"], "no M42"),
        ("8servo", [0, 90], "SET_SERVO"),
        ("8restart", [], "cannot rewind a job"),
    ],
)
def test_commands_with_no_klipper_meaning_exit_2_and_send_nothing(klipper, tmp_path, run, command, args, why):
    mark = klipper.mark()
    text = refused(
        run(klipper, tmp_path, command, *args, spawn=True), 2, "works only with OctoPrint, not Klipper (Moonraker)"
    )
    assert why in text and "nothing sent" in text
    assert klipper.sent_since(mark) == []


def test_info_commands_and_help_name_the_backend(klipper, tmp_path, run):
    assert ok(run(klipper, tmp_path, "8apiver")).startswith("API 1.5.0, Moonraker 0.11.0")
    assert ok(run(klipper, tmp_path, "8status", "-q")).strip() == "Operational"
    for command in ("8status_raw", "8statusraw"):
        assert json.loads(ok(run(klipper, tmp_path, command)))["klippy_state"] == "ready"
    checked = ok(run(klipper, tmp_path, "8checkcfg"))
    assert "Backend:       moonraker (auto" in checked and "Guard macros:  present (version 1)" in checked
    assert "Beep:          none: printer.cfg has no [gcode_macro M300]" in checked
    forced = ok(run(klipper, tmp_path, "8checkcfg", "--backend", "moonraker"))
    assert "Backend:       moonraker  [from command line]" in forced
    helped = ok(run(klipper, tmp_path, "octopanel", "-h"))
    assert any(line.split()[:1] == ["8connect"] and line.endswith("[OctoPrint only]") for line in helped.splitlines())
    assert not any(line.split()[:1] == ["8jog"] and "only]" in line for line in helped.splitlines())


def test_a_wrong_backend_setting_is_a_clear_error(klipper, tmp_path, run):
    refused(run(klipper, tmp_path, "8status", env={"OCTOPANEL_BACKEND": "moonrake"}), 2, "did you mean 'moonraker'")


def test_emergency_stop_reset_and_reconnect_also_under_a_daemon(klipper, tmp_path, run):
    """Klipper shut down and restarted twice (8reset, then 8reconnect), with a daemon running meanwhile: its
    state follows (a jog refused in the error state, then one refused as not homed after the restart)."""
    (tmp_path / "d").mkdir()
    daemon = DaemonProc(tmp_path / "d", env={"OCTOPRINT_URL": klipper.url})
    try:
        ok(run(klipper, tmp_path, "8estop"))
        klipper.wait_klippy_state("shutdown")
        assert ok(run(klipper, tmp_path, "8status", "-q")).startswith("Error: Klipper shutdown")
        refused(run(klipper, tmp_path, "8jog", 0, 0, 1), 1, "refused: the printer is in an error state")
        reply = daemon.ask("jog y=1")
        assert not reply["ok"] and "refused: the printer is in an error state" in reply["error"], reply
        assert daemon.ask("reset")["ok"]  # the daemon restarts Klipper's firmware
        time.sleep(0.5)  # Moonraker answers before Klipper's host has left "ready"
        back_ready(klipper)
        reply = daemon.ask("jog y=1")
        assert not reply["ok"] and "jog refused: Y is not homed" in reply["error"], reply
        assert klipper.query("toolhead")["toolhead"]["homed_axes"] == ""
        klipper.script("SET_KINEMATIC_POSITION X=1 Y=1 Z=1")  # homed by decree, so the restart shows
        ok(run(klipper, tmp_path, "8reset"))
        time.sleep(0.5)
        back_ready(klipper)
        assert klipper.query("toolhead")["toolhead"]["homed_axes"] == ""
        klipper.script("SET_KINEMATIC_POSITION X=1 Y=1 Z=1")
        ok(run(klipper, tmp_path, "8reconnect"))
        time.sleep(0.5)
        back_ready(klipper)
        refused(
            run(klipper, tmp_path, "8jog", 0, 0, 1), 1, "Klipper refused it: octopanel: jog refused: Z is not homed"
        )
        mark = klipper.mark()
        ok(run(klipper, tmp_path, "8home"))  # (the next test needs it homed anyway)
        assert klipper.query("toolhead")["toolhead"]["homed_axes"] == "xyz"
        assert klipper.sent_since(mark)[0] in ("G28 X Y Z", "OCTOPANEL_HOME AXES=XYZ")
        assert daemon.ask("jog y=1")["ok"]
        assert daemon.close() == 0, daemon.output()
    finally:
        daemon.kill()


def test_auto_detection_tells_both_backends_apart(klipper, octoprint):
    """/server/info answers on Moonraker; OctoPrint answers 404 there and serves /api/version."""
    for url, key, expected in ((klipper.url, None, "moonraker"), (octoprint.url, octoprint.api_key, "octoprint")):
        settings = settings_mod.load({"url": url, "api_key": key}, env={})
        assert detect(settings) == expected
    settings = settings_mod.load({"url": klipper.url, "api_key": "a-wrong-key-0123"}, env={})
    assert detect(settings) == "moonraker"  # Moonraker's 401 to a wrong key, even from a trusted address


def test_a_command_auto_detecting_octoprint_never_loads_the_moonraker_client(octoprint, tmp_path):
    """The probe is a bare HTTP client: on OctoPrint, the Moonraker modules (a daemon's resident memory) stay
    unloaded, and the command still works."""
    code = (
        "import sys\nfrom octopanel.cli import main\ncode = main(['status'])\n"
        "print(code, sorted(m for m in sys.modules if 'moonraker' in m))"
    )
    env = clean_env(tmp_path, OCTOPRINT_URL=octoprint.url, OCTOPRINT_API_KEY=octoprint.api_key)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines()[-1] == "0 []", out.stdout + out.stderr


@pytest.mark.parametrize("own_klipper", [{"macros": False}], indirect=True)
def test_without_the_guard_macros_moves_are_plain_scripts_and_a_refusal_restores_the_mode(own_klipper, tmp_path, run):
    """No [include octopanel.cfg]: 8checkcfg says so, a jog is SAVE_GCODE_STATE / G91 / G1 / RESTORE as one
    script, and Klipper's own refusal of the G1 (which ends the script before RESTORE) is followed by
    octopanel's own restore, so the next move is not relative (before: G91 stayed on)."""
    env = {"OCTOPRINT_URL": own_klipper.url}
    checked = ok(run(own_klipper, tmp_path, "8checkcfg", env=env))
    assert "warning: Klipper lacks octopanel's guard macros" in checked, checked
    refused(run(own_klipper, tmp_path, "8jog", 0, 0, 1, env=env), 1, "Klipper refused it: Must home axis first")
    assert own_klipper.query("gcode_move")["gcode_move"]["absolute_coordinates"] is True
    own_klipper.home()
    own_klipper.script("G90\nG1 X10 Y10 Z10 F6000")
    mark = own_klipper.mark()
    ok(run(own_klipper, tmp_path, "8jog", 5, 0, 1, env=env))
    assert own_klipper.position()[:3] == pytest.approx((15, 10, 11))
    sent = own_klipper.sent_since(mark)
    assert not [line for line in sent if "OCTOPANEL_JOG" in line], sent
    refused(run(own_klipper, tmp_path, "8jog", 300, 0, 0, env=env), 1, "Klipper refused it: Move out of range")
    assert own_klipper.query("gcode_move")["gcode_move"]["absolute_coordinates"] is True
    own_klipper.script("G1 X20 Y20 Z5")
    assert own_klipper.position()[:3] == pytest.approx((20, 20, 5))
