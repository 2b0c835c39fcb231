"""Headless Chromium for the chart tests: render an SVG file to a PNG at a chosen DPI, on a coloured page."""

import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

CSS_DPI = 96  # Chromium lays out 1 in = 96 CSS px; the device scale factor multiplies it
BACKGROUND = (255, 0, 255)  # the page around the sheet, so the sheet's own size can be measured
TIMEOUT_S = 60


def executable():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(svg_path, png_path, width_mm, height_mm, scale=2, margin_px=16):
    """Screenshot `svg_path` at CSS_DPI * scale into `png_path`; the window is the sheet plus `margin_px`
    of page on the right and bottom. Returns the DPI."""
    width = math.floor(width_mm / 25.4 * CSS_DPI) + margin_px  # floor: a margin of 0 shows no page
    height = math.floor(height_mm / 25.4 * CSS_DPI) + margin_px
    with tempfile.TemporaryDirectory(prefix="octopanel-chromium-") as profile:
        command = [
            executable(),
            "--headless",
            "--no-sandbox",  # the suite runs as root in CI, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--force-device-scale-factor={scale}",
            "--default-background-color={:02x}{:02x}{:02x}ff".format(*BACKGROUND),
            f"--window-size={width},{height}",
            f"--screenshot={png_path}",
            Path(svg_path).resolve().as_uri(),
        ]
        # Its own session, so that a hung Chromium goes with all its helper processes.
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise AssertionError(f"chromium did not render {svg_path} within {TIMEOUT_S} s") from None
        if proc.returncode != 0 or not Path(png_path).exists():
            raise AssertionError(f"chromium failed ({proc.returncode}) on {svg_path}: {err.decode()[-2000:]}")
    return CSS_DPI * scale


def size_mm(svg_path):
    """The width and height an SVG gives itself in mm."""
    root = ET.parse(svg_path).getroot()
    return tuple(float(root.get(k).removesuffix("mm")) for k in ("width", "height"))


if __name__ == "__main__":  # python tests/chromium.py keys.svg docs/keys.png: the README's picture, no margin
    print(render(sys.argv[1], sys.argv[2], *size_mm(sys.argv[1]), margin_px=0), "dpi")
