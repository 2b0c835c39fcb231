"""`octopanel chart`: every binding is on the SVG, at real key size, and the SVG renders in headless Chromium."""

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import chromium
import pngread
import pytest

from octopanel import settings
from octopanel.actions import build_registry
from octopanel.panel import keymap

HERE = Path(__file__).parent
ROOT = HERE.parent
SVG = "{http://www.w3.org/2000/svg}"
PITCH_MM = 19.05
CASES = {  # keymap -> the layout its devices: should choose
    "numpad": (ROOT / "etc" / "keymap.yaml", "numpad"),
    "macropad": (ROOT / "etc" / "examples" / "macropad.yaml", "macropad"),
    "shuttlexpress": (ROOT / "etc" / "examples" / "shuttlexpress.yaml", "shuttlexpress"),
    "generic": (HERE / "chart_keymaps" / "generic.yaml", "grid"),
}
MARKS = {"release": "release", "hold": "hold", "repeat": "↻", "double": "2×"}  # how a gesture is shown


def run_chart(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCTOPRINT_", "OCTOPANEL_"))}
    return subprocess.run(
        [sys.executable, "-m", "octopanel", "chart", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def squash(text):
    return re.sub(r"\s+", "", text)


def visible(element):
    """The text a reader sees: every <text>, not the <title> tooltips (they hold the full bindings)."""
    return " ".join("".join(t.itertext()) for t in element.iter(f"{SVG}text"))


def mm(value):
    return float(value.removesuffix("mm"))


def groups(root):
    return [g for g in root.iter(f"{SVG}g") if g.get("data-codes")]


def group_for(root, codes):
    found = [g for g in groups(root) if set(codes) <= set(g.get("data-codes").split())]
    assert found, f"no key on the chart for {codes}"
    return found[0]


@pytest.fixture(scope="module", params=sorted(CASES))
def chart(request, tmp_path_factory):
    """(case, keymap, svg root, svg path, PNG image, dpi): each chart drawn and rendered by Chromium once."""
    if chromium.executable() is None:
        pytest.fail("chromium is not installed: ./test.sh installs it (scripts/deps.sh)")
    name = request.param
    path, _layout = CASES[name]
    out = tmp_path_factory.mktemp(name) / "keys.svg"
    result = run_chart(path, "-o", out)
    assert result.returncode == 0, result.stderr
    root = ET.parse(out).getroot()
    png = out.with_suffix(".png")
    dpi = chromium.render(out, png, *chromium.size_mm(out))
    km = keymap.load(path, build_registry(), settings.load(env={}).limits)
    return name, km, root, out, pngread.read(png), dpi


def test_every_binding_is_on_its_key(chart):
    """Each binding's action line is on the key that sends it (or in the note it refers to), with its
    gesture, state and layer; the chart is read back with xml.etree, as drawn."""
    _name, km, root, _path, _png, _dpi = chart
    notes = squash(" ".join(visible(g) for g in root.iter(f"{SVG}g") if g.get("class") == "notes"))
    checked = 0
    for (layer, key, gesture), bindings in km.bindings.items():
        group = group_for(root, [key])
        text = squash(visible(group))
        for binding in bindings:
            line = squash(binding.line)
            assert line in text or (group.get("data-note") and line in notes), (key, binding.line, text)
            if gesture in MARKS:
                assert MARKS[gesture] in visible(group), (key, gesture)
            if binding.when != keymap.ANY:
                assert re.search("idle|printing|paused|disconnected", visible(group)), key
            if layer:
                assert f"{layer}" in visible(group), (key, layer)
            checked += 1
    for name, bindings in km.rotary.items():
        group = group_for(root, km.key_pairs.get(name, (name,)))
        for binding in bindings:
            assert squash(binding.line) in squash(visible(group)) and "turn" in visible(group), (name, binding.line)
            checked += 1
    for key, layer in km.shifts.items():
        assert f"layer {layer}" in visible(group_for(root, [key]))
    assert checked >= 5


def test_the_layout_follows_the_keymaps_devices(chart):
    name, _km, root, _path, _png, _dpi = chart
    assert root.get("data-layout") == CASES[name][1]


def test_chromium_renders_the_chart_at_its_size_in_mm(chart):
    """The sheet Chromium draws is as wide and tall as the SVG says in mm, at the DPI asked for, and it
    is not blank."""
    _name, _km, root, _path, png, dpi = chart
    width_px, height_px = (mm(root.get(k)) / 25.4 * dpi for k in ("width", "height"))
    sheet_w = next(x for x in range(png.width) if png.pixel(x, 5) == chromium.BACKGROUND)
    sheet_h = next(y for y in range(png.height) if png.pixel(5, y) == chromium.BACKGROUND)
    assert abs(sheet_w - width_px) <= 1.5 and abs(sheet_h - height_px) <= 1.5, (sheet_w, sheet_h, width_px, height_px)
    ink = sum(1 for y in range(0, sheet_h, 2) for x in range(0, sheet_w, 2) if sum(png.pixel(x, y)) < 300)
    assert ink > 1000, ink


def test_every_label_is_inked(chart):
    """Under each label line Chromium drew text: dark pixels where the line's glyphs are."""
    _name, _km, root, _path, png, dpi = chart
    px = dpi / 25.4
    labels = [t for t in root.iter(f"{SVG}text") if t.get("class") == "label" and "".join(t.itertext()).strip()]
    assert labels
    for text in labels:
        size, content = float(text.get("font-size")), "".join(text.itertext())
        width = len(content) * size * 0.6
        x0 = float(text.get("x")) - (width / 2 if text.get("text-anchor") == "middle" else 0)
        y = float(text.get("y"))
        dark = sum(
            1
            for yy in range(int((y - size * 0.75) * px), int(y * px) + 1)
            for xx in range(int(x0 * px), int((x0 + width) * px) + 1)
            if sum(png.pixel(xx, yy)) < 384
        )
        assert dark >= len(content.strip()), (content, dark)


def test_no_ink_outside_the_drawn_boxes(chart):
    """Nothing spills out of its key: every pixel that is not paper lies within a key's outline (the gaps
    between keycaps stay blank) or a text block."""
    _name, _km, root, _path, png, dpi = chart
    px = dpi / 25.4
    boxes = []
    for g in root.iter(f"{SVG}g"):
        if g.get("data-box"):
            x, y, w, h = map(float, g.get("data-box").split())
            boxes.append(((x - 0.3) * px, (y - 0.3) * px, (x + w + 0.3) * px, (y + h + 0.3) * px))
    sheet_w, sheet_h = (int(mm(root.get(k)) * px) - 2 for k in ("width", "height"))
    stray = [
        (x, y)
        for y in range(sheet_h)
        for x in range(sheet_w)
        if min(png.pixel(x, y)) < 200 and not any(a <= x <= c and b <= y <= d for a, b, c, d in boxes)
    ]
    assert not stray, stray[:10]


def test_a_numpad_is_drawn_at_real_key_size(tmp_path):
    """19.05 mm from key to key; 0 is two keys wide, + and Enter two keys tall; the size is in mm."""
    out = tmp_path / "keys.svg"
    assert run_chart(ROOT / "etc" / "keymap.yaml", "-o", out).returncode == 0
    root = ET.parse(out).getroot()
    width, height = mm(root.get("width")), mm(root.get("height"))
    assert root.get("width").endswith("mm") and root.get("viewBox") == f"0 0 {width:g} {height:g}"

    def cap(code):
        rect = group_for(root, [code]).find(f"{SVG}rect")
        return [float(rect.get(k)) for k in ("x", "y", "width", "height")]

    kp7, kp8, kp4, kp0 = cap("KEY_KP7"), cap("KEY_KP8"), cap("KEY_KP4"), cap("KEY_KP0")
    assert kp8[0] - kp7[0] == pytest.approx(PITCH_MM) and kp4[1] - kp7[1] == pytest.approx(PITCH_MM)
    gap = PITCH_MM - kp7[2]
    assert 0 < gap < 3
    assert kp0[2] == pytest.approx(2 * PITCH_MM - gap) and kp0[3] == pytest.approx(kp7[3])
    for tall in ("KEY_KPPLUS", "KEY_KPENTER"):
        assert cap(tall)[3] == pytest.approx(2 * PITCH_MM - gap) and cap(tall)[2] == pytest.approx(kp7[2])
    assert cap("KEY_KPENTER")[1] - cap("KEY_KPPLUS")[1] == pytest.approx(2 * PITCH_MM)
    assert width >= 4 * PITCH_MM and height >= 5 * PITCH_MM


def test_a_bad_keymap_is_the_keymaps_error_and_writes_nothing(tmp_path):
    golden = HERE / "keymaps" / "unknown_action.yaml"
    expected = golden.read_text().splitlines()[0].removeprefix("# error: ")
    out = tmp_path / "keys.svg"
    result = run_chart(golden.name, "-o", out, cwd=golden.parent)
    assert result.returncode == 2
    assert result.stderr.strip() == f"octopanel chart: {expected}"
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_key_too_full_for_its_cap_refers_to_a_note(tmp_path):
    """The long gmulti of generic.yaml does not fit: the key says so, the note has the whole line, and the
    command says how many keys did not fit."""
    out = tmp_path / "keys.svg"
    result = run_chart(CASES["generic"][0], "-o", out)
    assert result.returncode == 0 and "1 key(s) did not fit" in result.stderr
    root = ET.parse(out).getroot()
    key = group_for(root, ["KEY_D"])
    assert key.get("data-note") == "1" and "…note 1" in visible(key)
    notes = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "notes")
    assert "note 1 · D:" in visible(notes) and "'M117 done'" in visible(notes)


def test_a_binding_for_the_other_states_says_else(tmp_path):
    """KEY_B of generic.yaml: pause when printing, resume when paused, else getpos (the first that fits runs)."""
    out = tmp_path / "keys.svg"
    assert run_chart(CASES["generic"][0], "-o", out).returncode == 0
    text = visible(group_for(ET.parse(out).getroot(), ["KEY_B"]))
    assert re.search(r"printing:.*pause.*paused:.*resume.*else:.*getpos", text), text


def test_output_to_stdout_and_refusals(tmp_path):
    """-o - is standard output; -o replaces a file; never the keymap itself, nor a directory; an unknown
    layout is a usage error with a hint."""
    keys = ROOT / "etc" / "examples" / "macropad.yaml"
    result = run_chart(keys, "-o", "-")
    assert result.returncode == 0 and ET.fromstring(result.stdout.encode()).get("data-layout") == "macropad"
    out = tmp_path / "keys.svg"
    out.write_text("old")
    assert run_chart(keys, "-o", out, "--layout", "grid").returncode == 0
    assert ET.parse(out).getroot().get("data-layout") == "grid"
    copy = tmp_path / "mine.yaml"
    copy.write_text(keys.read_text())
    result = run_chart(copy, "-o", copy)
    assert result.returncode == 2 and "that is the keymap being charted" in result.stderr
    assert copy.read_text() == keys.read_text()
    result = run_chart(keys, "-o", tmp_path)
    assert result.returncode == 2 and "is a directory" in result.stderr
    result = run_chart(keys, "-o", out, "--layout", "numpda")
    assert result.returncode == 2 and "did you mean 'numpad'" in result.stderr
    assert "Traceback" not in result.stderr


def test_keys_a_layout_lacks_are_drawn_below_it(tmp_path):
    """A numpad keymap that also binds F13 still shows F13: in a row under the keypad, never dropped."""
    mine = tmp_path / "keymap.yaml"
    mine.write_text((ROOT / "etc" / "keymap.yaml").read_text() + '  KEY_F13: "msg hello"\n')
    out = tmp_path / "keys.svg"
    assert run_chart(mine, "-o", out).returncode == 0
    root = ET.parse(out).getroot()
    assert root.get("data-layout") == "numpad"
    assert "msg hello" in visible(group_for(root, ["KEY_F13"]))
    assert "keys not on this layout" in visible(root)
    below = float(group_for(root, ["KEY_F13"]).find(f"{SVG}rect").get("y"))
    assert below > float(group_for(root, ["KEY_KP0"]).find(f"{SVG}rect").get("y")) + PITCH_MM


def test_the_readme_picture_is_the_shipped_keymaps_chart_at_its_size(tmp_path):
    """docs/keys.png (python tests/chromium.py keys.svg docs/keys.png) is as big as the chart it shows,
    at 192 dpi: a chart grown since, and not rendered again, fails here."""
    out = tmp_path / "keys.svg"
    assert run_chart(ROOT / "etc" / "keymap.yaml", "-o", out).returncode == 0
    png = pngread.read(ROOT / "docs" / "keys.png")
    width, height = chromium.size_mm(out)
    assert (png.width, png.height) == tuple(int(v / 25.4 * chromium.CSS_DPI) * 2 for v in (width, height))
    assert png.pixel(png.width - 1, png.height - 1) != chromium.BACKGROUND


@pytest.mark.parametrize(
    "spec, layout",
    [
        ("*[Kk]eypad*", "numpad"),
        ("1189:8890", "macropad"),  # a CH57x by id alone
        ("*macro*", "macropad"),
        ("0b33:0020", "shuttlexpress"),
        ("Contour Design ShuttleXpress", "shuttlexpress"),
        ("0b33:0030", "grid"),  # a ShuttlePRO v2: no layout of its own
        ("/dev/input/by-id/usb-Some_Pad-event-kbd", "grid"),  # a path says nothing about the face
    ],
)
def test_a_layout_is_chosen_by_what_devices_would_match(spec, layout):
    from octopanel.chart import layouts
    from octopanel.input.devicespec import DeviceSpec

    assert layouts.choose([DeviceSpec.parse(spec)])[0].name == layout
    assert layouts.choose([DeviceSpec.parse("/dev/input/event3"), DeviceSpec.parse(spec)])[0].name == layout
