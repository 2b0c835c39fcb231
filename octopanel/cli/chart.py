"""`octopanel chart`: draw a keymap's bindings on its device, as an SVG to print at actual key size."""

import os
import sys
import tempfile

from octopanel.cli.panel import default_keymap, load_keymap, parse, parser_for
from octopanel.errors import OctopanelError, UsageError


def write(path: str, text: str, keymap_path: str) -> None:
    """`-` is stdout; a file is replaced whole (written beside it, then renamed), never the keymap itself."""
    if path == "-":
        sys.stdout.write(text)
        return
    if os.path.isdir(path):
        raise UsageError(f"-o {path}: is a directory; name the SVG file to write")
    if os.path.exists(path) and os.path.samefile(path, keymap_path):
        raise UsageError(f"-o {path}: that is the keymap being charted; name another file")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".chart-", suffix=".svg", dir=directory)
    except OSError as exc:
        raise UsageError(f"-o {path}: cannot write in {directory}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        os.unlink(tmp)
        raise UsageError(f"-o {path}: {exc.strerror}") from None


def main(argv: list[str] | None = None) -> int:
    from octopanel.chart.layouts import LAYOUTS

    parser = parser_for("chart", "draw a keymap's bindings on its keys, as an SVG sized to print at actual size")
    parser.add_argument("keymap", nargs="?", default=None, help="keymap file (default: the one run would use)")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="the SVG file to write, replaced if it exists; - for standard output",
    )
    parser.add_argument(
        "--layout",
        default=None,
        help=f"draw on this layout: {', '.join(LAYOUTS)} (default: the one the keymap's devices: match, else grid)",
    )
    try:
        args = parse(parser, argv if argv is not None else sys.argv[1:])
        from octopanel.chart import layouts, svg

        path = args.keymap or default_keymap()
        km, _registry, _settings = load_keymap(path)
        layout, why = layouts.choose(km.devices, args.layout)
        chart = svg.render(km, layout, why)
        write(args.output, chart.svg, path)
    except OctopanelError as exc:
        print(f"octopanel chart: {exc}", file=sys.stderr)
        return exc.exit_code
    where = "standard output" if args.output == "-" else args.output
    print(
        f"{where}: {chart.width_mm:g} x {chart.height_mm:g} mm, layout {layout.name} ({why}), {chart.keys} keys; "
        "print at actual size (100 %)",
        file=sys.stderr,
    )
    if chart.notes:
        print(
            f"{len(chart.notes)} key(s) did not fit their bindings: the rest is in notes under the chart",
            file=sys.stderr,
        )
    return 0
