"""End to end: files on OctoPrint's local storage: upload (file or stdin), runfile, fselect, ls, ls_raw, ll."""

import json
import re
import uuid

import pytest
from cmdcheck import PRINT_MOVE, failed, job, ok, requests_made


def unique(stem="part"):
    return f"{stem}-{uuid.uuid4().hex[:8]}.gcode"


def gcode(n_moves=300):
    return "G90\n" + "".join(f"G1 X{180 if i % 2 == 0 else 20} F3000\n" for i in range(n_moves))


def stored(printer, name):
    """The bytes OctoPrint stored under name."""
    response = printer.request("GET", f"/downloads/files/local/{name}")
    assert response.status_code == 200, response.status_code
    return response.content


# -- upload ---------------------------------------------------------------------------------------------------


def test_upload_a_file(run8, printer, tmp_path):
    name = unique()
    path = tmp_path / name
    path.write_text(gcode(5))
    proc = ok(run8("8upload", path))
    assert proc.stdout == f"uploaded {name} ({len(gcode(5))} bytes)\n"
    assert stored(printer, name) == gcode(5).encode()
    assert job(printer)["job"]["file"]["name"] is None  # not selected
    assert "printing" not in printer.flags()


def test_upload_from_stdin(run8, printer):
    text = "; from stdin\nM117 stdin upload\n" + uuid.uuid4().hex + "\n"
    proc = ok(run8("8upload", "-", input=text))
    assert proc.stdout == f"uploaded stdin.gcode ({len(text)} bytes)\n"
    assert stored(printer, "stdin.gcode") == text.encode()
    assert "printing" not in printer.flags()


def test_upload_with_a_name(runop, printer):
    name = unique("named")
    ok(runop("upload", "-", f"name={name}", input="G28\n"))
    assert stored(printer, name) == b"G28\n"


def test_upload_a_missing_file_is_a_usage_error(run8, tmp_path):
    proc = failed(
        run8("8upload", "-v", tmp_path / "absent.gcode"), 2, "cannot read", "absent.gcode", "No such file or directory"
    )
    assert requests_made(proc.stderr) == []


def test_upload_over_the_file_being_printed_is_refused(run8, printer, tmp_path):
    printer.print_file(name="busy.gcode")
    path = tmp_path / "busy.gcode"
    path.write_text("G28\n")
    failed(run8("8upload", path), 1, "8upload: the printer refused:")


# -- runfile ---------------------------------------------------------------------------------------------------


def test_runfile_from_stdin_prints_it(run8, printer):
    mark = printer.mark()
    proc = ok(run8("8runfile", "-", input=gcode(300)))
    assert proc.stdout == f"uploaded tmp.g ({len(gcode(300))} bytes), printing\n"
    printer.wait_state("printing", timeout=10)
    assert job(printer)["job"]["file"]["name"] == "tmp.g"
    printer.wait_sent(mark, ["G90", PRINT_MOVE])
    assert stored(printer, "tmp.g") == gcode(300).encode()


def test_runfile_from_a_file(run8, printer, tmp_path):
    path = tmp_path / "mine.gcode"
    path.write_text(gcode(300))
    ok(run8("8runfile", path))
    printer.wait_state("printing", timeout=10)
    assert job(printer)["job"]["file"]["name"] == "tmp.g"


def test_runfile_while_printing_is_refused(run8, printer):
    printer.print_file()
    proc = failed(run8("8runfile", "-v", "-", input="G28\n"), 1, "runfile refused: the printer is printing")
    assert [m for m in requests_made(proc.stderr) if not m.startswith("GET ")] == []


# -- fselect, ls, ll -----------------------------------------------------------------------------------------------


def test_fselect(run8, printer):
    name = unique("select")
    ok(run8("8upload", "-", f"name={name}", input=gcode(3)))
    assert ok(run8("8fselect", name)).stdout == f"selected {name}\n"
    assert job(printer)["job"]["file"]["name"] == name
    assert "printing" not in printer.flags()


def test_fselect_unknown_file(run8):
    failed(run8("8fselect", "no-such-file.gcode"), 1, "not found: POST /api/files/local/no-such-file.gcode")


def test_fselect_while_printing_is_refused(run8, printer):
    printer.print_file(name="printing-now.gcode")
    failed(run8("8fselect", "printing-now.gcode"), 1, "fselect refused: the printer is printing")
    assert job(printer)["job"]["file"]["name"] == "printing-now.gcode"


def test_ls_ls_raw_and_ll(run8, printer):
    name = unique("listed")
    ok(run8("8upload", "-", f"name={name}", input=gcode(4)))
    names = ok(run8("8ls")).stdout.splitlines()
    assert name in names
    listing = json.loads(ok(run8("8ls_raw")).stdout)
    assert name in [f["name"] for f in listing["files"]]
    assert [f["name"] for f in json.loads(ok(run8("8ls", "--json")).stdout)["files"]] == [
        f["name"] for f in listing["files"]
    ]
    info = json.loads(ok(run8("8ll", name)).stdout)
    assert info["name"] == name and info["size"] == len(gcode(4)) and info["origin"] == "local"


def test_ls_lists_files_in_folders(run8, printer):
    folder = f"dir-{uuid.uuid4().hex[:6]}"
    response = printer.request("POST", "/api/files/local", data={"foldername": folder})
    assert response.status_code == 201, response.text
    response = printer.request(
        "POST", "/api/files/local", files={"file": ("inner.gcode", "G28\n")}, data={"path": folder}
    )
    assert response.status_code == 201, response.text
    assert f"{folder}/inner.gcode" in ok(run8("8ls")).stdout.splitlines()
    info = json.loads(ok(run8("8ll", f"{folder}/inner.gcode")).stdout)
    assert info["path"] == f"{folder}/inner.gcode"


def test_ll_unknown_file(run8):
    failed(run8("8ll", "no-such-file.gcode"), 1, "not found: GET /api/files/local/no-such-file.gcode")


@pytest.mark.parametrize("name", ["with space.gcode", "hash#and?query.gcode"])
def test_upload_reports_the_name_octoprint_stored(run8, printer, name):
    """OctoPrint sanitizes names (it drops '?'); the name 8upload reports must be the one 8ll and 8fselect find."""
    proc = ok(run8("8upload", "-", f"name={name}", input="G28\n"))
    reported = re.fullmatch(r"uploaded (.+) \(4 bytes\)\n", proc.stdout).group(1)
    assert json.loads(ok(run8("8ll", reported)).stdout)["name"] == reported
    ok(run8("8fselect", reported))
    assert job(printer)["job"]["file"]["name"] == reported
