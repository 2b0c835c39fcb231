# Sourced by ../demo.sh and ../test.sh: install the Debian packages that evdev and systemd-python need to
# build (only those missing; with sudo when not root), then create the venv $VENV if it does not exist.
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
APT_PACKAGES="libsystemd-dev pkg-config gcc python3-dev python3-venv systemd"

missing=""
for pkg in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "installing Debian packages:$missing"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
