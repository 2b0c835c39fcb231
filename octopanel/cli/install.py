"""`octopanel install | uninstall`: the systemd service on this machine (user, /etc/octopanel, unit, udev rule).

Idempotent: a second run changes nothing, and a keymap or config that exists is never overwritten.
With --destdir the files are staged under DIR and the commands (useradd, systemctl) are only printed.
"""

import argparse
import grp
import os
import pwd
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from octopanel.cli import install_klipper
from octopanel.cli.install_checks import SERVICE_USER, check_service_paths
from octopanel.cli.installer import Installer
from octopanel.cli.panel import parse as parse_args
from octopanel.datafiles import shipped_path
from octopanel.errors import OctopanelError, UsageError

USER = GROUP = SERVICE_USER
UNIT = "octopanel.service"
UNIT_BIN = "/usr/local/bin/octopanel"  # what the shipped unit names; rendered to the octopanel in use
CONF_DIR = "etc/octopanel"
API_KEY = "etc/octopanel/api-key"
# Shipped file, where it goes (under DESTDIR), its mode, and whether a newer copy replaces it.
FILES = (
    ("etc/config.yaml", "etc/octopanel/config.yaml", 0o640, False),
    ("etc/keymap.yaml", "etc/octopanel/keymap.yaml", 0o640, False),
    ("systemd/octopanel.service", "etc/systemd/system/octopanel.service", 0o644, True),
    ("udev/70-octopanel.rules", "etc/udev/rules.d/70-octopanel.rules", 0o644, True),
)


def data_file(rel: str) -> bytes:
    """A shipped file's bytes: from the wheel (octopanel/_data, see setup.py) or the source tree (editable)."""
    path = shipped_path(rel)
    if path is not None:
        return path.read_bytes()
    raise OctopanelError(f"{rel} is missing from this octopanel installation; reinstall it with pip")


def default_bin() -> Path | None:
    """The octopanel script the service should run: the one beside this Python (a venv), else on PATH."""
    beside = Path(sys.executable).parent / "octopanel"
    if beside.is_file():
        return beside
    found = shutil.which("octopanel")
    return Path(found) if found else None


def render_unit(binary: "str | os.PathLike[str]") -> bytes:
    """The shipped unit with ExecStart= and ExecStartPre= naming `binary`."""
    text = data_file("systemd/octopanel.service").decode()
    binary = str(binary)
    if not os.path.isabs(binary) or any(c.isspace() for c in binary):
        raise UsageError(f"the octopanel executable must be an absolute path without spaces, got '{binary}'")
    return text.replace(UNIT_BIN, binary).encode()


def interpreter(binary: "str | os.PathLike[str]") -> Path:
    """The Python that `binary` (a pip console script) starts: its #! line, else the python3 beside it."""
    try:
        with open(binary, "rb") as handle:
            first = handle.readline(4096).decode("utf-8", "replace").strip()
    except OSError:
        first = ""
    named = first[2:].strip() if first.startswith("#!") else ""
    # pip writes a /bin/sh trampoline instead when the path is long or has spaces: then guess.
    if os.path.isabs(named) and not any(c.isspace() for c in named):
        return Path(named)
    return Path(binary).parent / "python3"


def package_dir(prefix: str | None) -> Path | None:
    """The octopanel package the service imports: this one, unless --prefix names another installation."""
    here = Path(__file__).resolve().parent.parent
    if prefix is None or Path(prefix).resolve() == Path(sys.prefix).resolve():
        return here
    found = sorted(Path(prefix).glob("lib/python3*/site-packages/octopanel"))
    return found[0] if found else None  # an editable install elsewhere: only the prefix itself is checked


def service_paths(binary: Path, package: Path | None) -> list[tuple[str, Path, str]]:
    """What the service runs and imports: (role, path, kind) for check_service_paths."""
    prefix = binary.parent.parent
    paths = [
        ("venv" if (prefix / "pyvenv.cfg").exists() else "prefix", prefix, "dir"),
        ("octopanel executable", binary, "exec"),
        ("Python interpreter", interpreter(binary), "exec"),
    ]
    return paths + ([("octopanel package directory", package, "dir")] if package is not None else [])


def ensure_user(inst: Installer) -> None:
    try:
        pwd.getpwnam(USER)
        inst.say("kept", f"user {USER}")
        return
    except KeyError:
        pass
    groups = ["--groups", "input"] if group_exists("input") else []
    shell = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(s)), "/bin/false")
    created = inst.run(
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        shell,
        *groups,
        USER,
    )
    if inst.live and not created:
        raise OctopanelError(f"could not create the user {USER} (see above): create it, then run this again")


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def install(args: argparse.Namespace, inst: Installer, sysroot: str = "/") -> None:
    """`sysroot` (see install_checks) lets tests point the path checks at a crafted tree."""
    binary = Path(os.path.abspath(args.prefix)) / "bin" / "octopanel" if args.prefix else default_bin()
    if binary is None:
        raise UsageError("cannot find the octopanel executable; give --prefix (it runs PREFIX/bin/octopanel)")
    paths = service_paths(binary, package_dir(args.prefix))
    check_service_paths(paths, inst.live, lambda line: print(line, file=inst.out), sysroot)  # a missing binary too
    unit = render_unit(binary)
    key = read_key(args.api_key_file) if args.api_key_file else None  # every check before the first change
    ensure_user(inst)
    inst.directory(CONF_DIR, 0o750, GROUP)
    changed = {}
    for source, target, mode, replace in FILES:
        data = unit if source.startswith("systemd/") else data_file(source)
        group = GROUP if target.startswith(CONF_DIR) else "root"
        changed[source] = inst.file(target, data, mode, replace, group)
    if key is not None:
        inst.file(API_KEY, key.encode() + b"\n", 0o600, True)
    have_key = inst.path(API_KEY).is_file()
    inst.run("systemctl", "daemon-reload")
    if inst.run("udevadm", "control", "--reload") and changed["udev/70-octopanel.rules"] != "kept":
        inst.run("udevadm", "trigger", "--subsystem-match=input", "--action=change")  # panels already plugged in
    if not args.no_enable:
        inst.run("systemctl", "enable", *(["--now"] if have_key else []), UNIT)
        if have_key and changed["systemd/octopanel.service"] == "updated":
            inst.run("systemctl", "try-restart", UNIT)
    print(next_steps(have_key, args.no_enable), file=inst.out)


def read_key(path: str) -> str:
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--api-key-file: cannot read {path}: {exc}") from None
    if not key or any(c.isspace() for c in key):
        raise UsageError(f"--api-key-file: {path} must hold one API key on one line")
    return key


def next_steps(have_key: bool, no_enable: bool) -> str:
    steps = ["Check url: in /etc/octopanel/config.yaml and devices: in /etc/octopanel/keymap.yaml."]
    if not have_key:
        steps += [
            "Put OctoPrint's API key (Settings > Application Keys) in /etc/octopanel/api-key, readable by",
            "root only; the service gets it as the systemd credential octoprint-api-key:",
            "  sudo install -m 600 -o root -g root KEYFILE /etc/octopanel/api-key",
            "  (or run this again with --api-key-file KEYFILE)",
        ]
    if not have_key or no_enable:
        steps.append(f"Start it: sudo systemctl {'enable --now' if no_enable else 'start'} {UNIT}")
    steps += ["Logs: journalctl -u octopanel -f    After editing the keymap: sudo systemctl reload octopanel"]
    return "\n".join(["", "next:"] + ["  " + step for step in steps])


def uninstall(args: argparse.Namespace, inst: Installer) -> None:
    inst.run("systemctl", "disable", "--now", UNIT)
    for _source, target, _mode, replace in FILES:
        if replace:
            path = inst.path(target)
            if path.exists():
                path.unlink()
                inst.say("removed", str(path))
            else:
                inst.say("absent", str(path))
    inst.run("systemctl", "daemon-reload")
    inst.run("udevadm", "control", "--reload")
    conf = inst.path(CONF_DIR)
    if args.purge and conf.exists():
        shutil.rmtree(conf)
        inst.say("removed", f"{conf}/", "config, keymap and API key")
    elif conf.exists():
        inst.say("kept", f"{conf}/", "your config, keymap and API key; --purge removes them")
    print(f"The user {USER} is kept; remove it with: sudo userdel {USER}", file=inst.out)


def parse(argv: Sequence[str] | None, name: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"octopanel {name}", description=__doc__.splitlines()[0])
    parser.add_argument("--destdir", help="stage the files under DIR; change nothing on this machine")
    if name == "install":
        parser.add_argument("--prefix", help="the service runs PREFIX/bin/octopanel (default: this octopanel)")
        parser.add_argument("--no-enable", action="store_true", help="do not enable or start the service")
        parser.add_argument("--api-key-file", help="copy OctoPrint's API key from this file to /etc/octopanel/api-key")
        parser.add_argument("--klipper-macros", metavar="DIR", help="only write Klipper's guard macros to DIR")
    else:
        parser.add_argument("--purge", action="store_true", help="also remove /etc/octopanel (config, keymap, key)")
    return parse_args(parser, argv)


def main(name: str, argv: Sequence[str] | None, sysroot: str = "/") -> int:
    """`octopanel install ARGS` or `octopanel uninstall ARGS` (one module, as cli/panel.py serves run and check).

    `sysroot` is for tests only: neither the command line nor the environment sets it."""
    try:
        args = parse(argv, name)
        if getattr(args, "klipper_macros", None) is not None:
            return install_klipper.main(args)
        live = not args.destdir
        if live and os.geteuid() != 0:
            raise UsageError(f"{name} needs root: sudo {sys.argv[0]} {name} (or --destdir DIR to stage the files)")
        inst = Installer(args.destdir or "/", live)
        if name == "install":
            install(args, inst, sysroot)
        else:
            uninstall(args, inst)
        return 1 if inst.failed else 0
    except OctopanelError as exc:
        print(f"octopanel {name}: {exc}", file=sys.stderr)
        return exc.exit_code
