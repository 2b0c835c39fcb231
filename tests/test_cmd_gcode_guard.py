"""Raw G-code that moves the printer is refused while printing, like jog, home and extrude."""

BUSY_LINES = ("G28", "g1 x5", "G0 Z10")


def test_motion_gcode_is_refused_while_printing_and_nothing_is_sent(run8, printer):
    printer.print_file()
    for line in BUSY_LINES:
        mark = printer.mark()
        proc = run8("8g", line)
        assert proc.returncode == 1, proc.stderr
        assert "refused while it is printing" in proc.stderr and "Traceback" not in proc.stderr
        proc = run8("8gmulti", "M117 first", line)
        assert proc.returncode == 1
        sent = printer.settle(mark, quiet=0.1)
        assert not {line.upper(), "M117 FIRST"} & set(sent), sent


def test_other_gcode_still_goes_through_while_printing(run8, printer):
    printer.print_file()
    mark = printer.mark()
    proc = run8("8g", "m117 still printing")
    assert proc.returncode == 0, proc.stderr
    printer.wait_sent(mark, ["M117 STILL PRINTING"])


def test_force_overrides_and_idle_needs_no_force(run8, printer):
    mark = printer.mark()
    assert run8("8g", "G28 X0").returncode == 0
    printer.wait_sent(mark, ["G28 X0"])
    printer.print_file()
    mark = printer.mark()
    assert run8("8g", "--force", "G0 Z1").returncode == 0
    printer.wait_sent(mark, lambda sent: "G0 Z1" in sent)


def test_msg_without_text_sends_a_bare_m117(run8, printer):
    mark = printer.mark()
    assert run8("8msg").returncode == 0
    printer.wait_sent(mark, ["M117"])


def test_raw_gcode_keeps_the_temperature_caps_and_the_cold_extrusion_rule(run8, printer):
    mark = printer.mark()
    for args, code, words in (
        (("8g", "M104 S400"), 2, "above max_tool_temp 285"),
        (("8g", "m140 s130"), 2, "above max_bed_temp 120"),
        (("8gmulti", "M117 first", "M109 R300"), 2, "above max_tool_temp"),
        (("8g", "G1 E50"), 1, "below min_extrude_temp"),
        (("8g", "g01 x5 e50"), 1, "below min_extrude_temp"),
    ):
        proc = run8(*args)
        assert proc.returncode == code and words in proc.stderr, (args, proc.stderr)
    assert run8("8g", "M104 S200").returncode == 0
    sent = printer.wait_sent(mark, ["M104 S200"])
    assert not {"M104 S400", "M140 S130", "M117 FIRST", "M109 R300", "G1 E50", "G01 X5 E50"} & set(sent), sent
