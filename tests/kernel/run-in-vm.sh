#!/bin/bash
# run-in-vm.sh CMD [ARGS...]
# (octopanel's copy for tests/kernel; adapted from the shared kernel-vm runner: adds VM_HOSTFWD)
#
# Runs CMD as root inside a throw-away QEMU VM that boots Debian's stock kernel (linux-image-amd64, with
# the uinput/evdev/uhid/dummy_hcd modules) on top of THIS machine's root filesystem, shared read-only
# over 9p with a tmpfs overlay on every top-level directory (writes inside the VM are discarded).
# CMD's stdout and stderr come back separately (virtio-serial), and so does its exit status: this
# script exits with CMD's status; 124 if VM_TIMEOUT expired, 125 if the VM did not run CMD.
#
# Needs only Debian 12's apt repositories: installs qemu-system-x86 busybox-static kmod if missing, and
# downloads (apt-get download, not installed) the current linux-image-*-amd64 into the cache once.
#
# Environment:
#   VM_ACCEL    auto (default: kvm if /dev/kvm is usable and the CPU shows vmx/svm, else tcg) | kvm | tcg
#   VM_CPUS     vCPUs (default: nproc)            VM_MEM   guest RAM (default 2G; overlays live in it)
#   VM_TIMEOUT  seconds before the VM is killed (default 1200)
#   VM_RW       space-separated host directories shared READ-WRITE (e.g. a results folder)
#   VM_ENV      space-separated names of further variables to pass (PATH HOME LANG LC_ALL TZ CI are passed)
#   VM_MODULES  space-separated extra modules to load at boot (uinput evdev are always loaded)
#   VM_UDEV=1   start the host's systemd-udevd inside the VM (needs the udev package; gives /dev/input
#               group input and by-id links for USB devices)
#   VM_HOSTFWD  a host TCP port (e.g. a test OctoPrint on 127.0.0.1): the guest reaches it as
#               10.0.2.100:PORT through a restricted user-mode NIC (restrict=on: nothing else is reachable)
#   (otherwise no network: the guest has only lo; run what the test needs inside the VM)
#   VM_KERNEL_PKG  e.g. linux-image-6.1.0-57-amd64 (default: what linux-image-amd64 depends on)
#   VM_CACHE    kernel cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/kernel-vm)
#   VM_APPEND   extra kernel command line (e.g. sysctl.kernel.hung_task_timeout_secs=10)
#   VM_VERBOSE=1   kernel messages and timings on stderr
set -euo pipefail

die() { echo "run-in-vm: $*" >&2; exit 125; }
say() { [ "${VM_VERBOSE:-0}" = 1 ] && echo "run-in-vm: $*" >&2 || true; }
[ $# -gt 0 ] || die "usage: run-in-vm.sh CMD [ARGS...]"
[ "$(uname -m)" = x86_64 ] || die "x86_64 only"
T_START=$(date +%s.%N)

SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

# ---------------------------------------------------------------- 1. host packages
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v depmod >/dev/null || [ -x /sbin/depmod ] || need+=(kmod)
if [ ${#need[@]} -gt 0 ]; then
    echo "run-in-vm: installing ${need[*]}" >&2
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
PATH=$PATH:/sbin:/usr/sbin

# ---------------------------------------------------------------- 2. kernel + modules (cached)
CACHE=${VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kernel-vm}
PKG=${VM_KERNEL_PKG:-}
if [ -z "$PKG" ]; then
    PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    if [ -z "$PKG" ]; then $SUDO apt-get update -qq >&2
        PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'); fi
fi
[ -n "$PKG" ] || die "cannot resolve linux-image-amd64"
KVER=${PKG#linux-image-}
KDIR=$CACHE/$KVER
# the module folders kept (about 25 MB instead of 400 MB): the VM itself, input/HID/uinput/uhid, and
# USB (dummy_hcd + configfs HID gadget: a keypad on a real USB bus inside the VM)
KEEP="kernel/drivers/input kernel/drivers/hid kernel/drivers/usb kernel/drivers/virtio kernel/drivers/char
 kernel/drivers/net/virtio_net.ko kernel/drivers/net/net_failover.ko kernel/net/core kernel/net/9p
 kernel/fs/9p kernel/fs/overlayfs kernel/fs/netfs kernel/fs/fscache kernel/fs/fuse kernel/fs/configfs kernel/lib"
if [ "$(cat "$KDIR/ok" 2>/dev/null)" != "$KEEP" ]; then
    echo "run-in-vm: fetching $PKG into $KDIR" >&2
    tmp=$(mktemp -d); mkdir -p "$CACHE"; chmod 755 "$tmp"
    (cd "$tmp" && apt-get download "$PKG" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || true
    ls "$tmp"/*.deb >/dev/null 2>&1 || { $SUDO apt-get update -qq >&2; (cd "$tmp" && apt-get download "$PKG" >&2 2>/dev/null); }
    rm -rf "$KDIR"; mkdir -p "$KDIR"
    members=("./boot/vmlinuz-$KVER" "./boot/config-$KVER")
    for k in modules.order modules.builtin modules.builtin.modinfo $KEEP; do members+=("./lib/modules/$KVER/$k"); done
    # extract only those members (the whole package would be 400 MB)
    dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$KDIR" "${members[@]}"
    mv "$KDIR/boot/vmlinuz-$KVER" "$KDIR/boot/config-$KVER" "$KDIR/" && rmdir "$KDIR/boot"
    depmod -b "$KDIR" "$KVER"
    rm -rf "$tmp"
    echo "$KEEP" > "$KDIR/ok"
fi

# ---------------------------------------------------------------- 3. initramfs for this run
RUN=$(mktemp -d /tmp/run-in-vm.XXXXXX)
QPID=""; CAT1=""; CAT2=""
cleanup() { for p in $QPID $CAT1 $CAT2; do kill "$p" 2>/dev/null; done; rm -rf "$RUN"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$RUN/i/bin" "$RUN/i/mod" "$RUN/i/vm" "$RUN/i/proc" "$RUN/i/sys" "$RUN/i/dev" "$RUN/i/newroot" "$RUN/i/ovl"
cp /bin/busybox "$RUN/i/bin/busybox"
mods="9p 9pnet_virtio virtio_pci overlay virtio_console evdev uinput ${VM_MODULES:-}"
[ -n "${VM_HOSTFWD:-}" ] && mods="$mods virtio_net"
for m in $mods; do
    modprobe -d "$KDIR" -S "$KVER" --show-depends "$m" || die "module $m not in $KDIR (add its folder to the keep list)"
done | awk '$1=="insmod"{print $2}' | awk '!seen[$0]++' | while read -r ko; do
    cp "$ko" "$RUN/i/mod/"; basename "$ko" .ko >> "$RUN/i/mod/order"
done

q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }   # POSIX single-quote
{
    for v in PATH HOME LANG LC_ALL TZ CI ${VM_ENV:-}; do
        [ -n "${!v+x}" ] && echo "export $v=$(q "${!v}")"
    done
    echo "export TERM=dumb"
    echo "cd $(q "$PWD") 2>/dev/null || cd /"
    printf 'exec'; for a in "$@"; do printf ' %s' "$(q "$a")"; done; echo
} > "$RUN/i/vm/cmd.sh"

rw_tags=""; qemu_rw=(); n=0
for d in ${VM_RW:-}; do
    d=$(realpath "$d"); [ -d "$d" ] || die "VM_RW: $d is not a directory"
    qemu_rw+=(-virtfs "local,path=$d,mount_tag=rw$n,security_model=none,multidevs=remap")
    rw_tags="$rw_tags rw$n=$d"; n=$((n + 1))
done
cat > "$RUN/i/vm/conf" <<EOF
KVER=$(q "$KVER")
KMODS=$(q "$KDIR/lib/modules/$KVER")
RW_TAGS=$(q "$rw_tags")
UDEV=$(q "${VM_UDEV:-0}")
NET=$(q "${VM_HOSTFWD:+1}")
EOF

cat > "$RUN/i/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
. /vm/conf
log() { echo "vm-init: $*" > /dev/console; }
fail() { log "$*"; echo "rc=125 stage=init error=$*" > "$RCDEV"; poweroff -f; }
for m in $(cat /mod/order); do insmod /mod/$m.ko 2>/dev/console || log "insmod $m failed"; done
port() { for p in /sys/class/virtio-ports/*; do [ "$(cat $p/name 2>/dev/null)" = "$1" ] && echo /dev/${p##*/}; done; }
OUT=$(port vm.out); ERR=$(port vm.err); RCDEV=$(port vm.rc)
[ -n "$RCDEV" ] || { log "no virtio ports"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /newroot || fail "9p root"
mount -t tmpfs -o mode=755 tmpfs /ovl
for d in /newroot/*; do
    name=${d#/newroot/}
    case "$name" in proc|sys|dev|run|lost+found) continue;; esac
    [ -d "$d" ] && [ ! -L "$d" ] || continue
    mkdir -p "/ovl/$name/u" "/ovl/$name/w"
    mount -t overlay overlay -o "lowerdir=$d,upperdir=/ovl/$name/u,workdir=/ovl/$name/w" "$d" || log "overlay $d failed"
done
for tp in $RW_TAGS; do mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 "${tp%%=*}" "/newroot${tp#*=}" || fail "rw ${tp#*=}"; done
mount -t devtmpfs devtmpfs /newroot/dev; mount -t proc proc /newroot/proc; mount -t sysfs sysfs /newroot/sys
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts; mount -t tmpfs tmpfs /newroot/dev/shm
mount -t tmpfs -o mode=755 tmpfs /newroot/run
[ -d /newroot/tmp ] && chmod 1777 /newroot/tmp
mkdir -p "/newroot/lib/modules/$KVER" && mount --bind "/newroot$KMODS" "/newroot/lib/modules/$KVER"
hostname vm; ip link set lo up
if [ -n "$NET" ]; then ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 || log "no eth0"; fi
if [ "$UDEV" = 1 ]; then
    chroot /newroot /lib/systemd/systemd-udevd --daemon >/dev/null 2>&1 || log "no udevd"
    chroot /newroot udevadm trigger --action=add >/dev/null 2>&1; chroot /newroot udevadm settle -t 60 >/dev/null 2>&1
fi
cp /vm/cmd.sh /newroot/run/vm-cmd.sh
read up _ < /proc/uptime
chroot /newroot /bin/sh /run/vm-cmd.sh < /dev/null > "$OUT" 2> "$ERR"
rc=$?
read end _ < /proc/uptime
echo "rc=$rc boot=$up end=$end" > "$RCDEV"
sync
poweroff -f
EOF
chmod +x "$RUN/i/init"
(cd "$RUN/i" && find . | busybox cpio -o -H newc 2>/dev/null) > "$RUN/initrd"

# ---------------------------------------------------------------- 4. boot
accel=${VM_ACCEL:-auto}
if [ "$accel" = auto ]; then
    accel=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -q -w -E 'vmx|svm' /proc/cpuinfo; then accel=kvm; fi
fi
if [ "$accel" = kvm ]; then cpu=(-accel kvm -cpu host); else cpu=(-accel "tcg,thread=multi" -cpu max); fi
loglevel="quiet loglevel=1"; [ "${VM_VERBOSE:-0}" = 1 ] && loglevel="loglevel=6"
net=(-nic none)
if [ -n "${VM_HOSTFWD:-}" ]; then
    case "$VM_HOSTFWD" in *[!0-9]*) die "VM_HOSTFWD: expected a port number, got $VM_HOSTFWD";; esac
    net=(-netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:$VM_HOSTFWD-tcp:127.0.0.1:$VM_HOSTFWD"
         -device virtio-net-pci,netdev=n0)
fi
: > "$RUN/rc"
# CMD's output goes through FIFOs and cat, so that it lands on our own stdout/stderr file descriptions
# (qemu reopening /proc/self/fd/1 would get its own offset in a regular file and overwrite it).
mkfifo "$RUN/out" "$RUN/err"
cat "$RUN/out" & CAT1=$!
cat "$RUN/err" >&2 & CAT2=$!
say "kernel $KVER, accel $accel, $(du -k "$RUN/initrd" | cut -f1) KB initrd"
T_BOOT=$(date +%s.%N)
timeout --kill-after=10 "${VM_TIMEOUT:-1200}" qemu-system-x86_64 \
    -machine q35 -bios /usr/share/qemu/qboot.rom "${cpu[@]}" -smp "${VM_CPUS:-$(nproc)}" -m "${VM_MEM:-2G}" \
    -nodefaults -no-user-config -display none -vga none -no-reboot "${net[@]}" \
    -kernel "$KDIR/vmlinuz-$KVER" -initrd "$RUN/initrd" \
    -append "console=ttyS0 panic=-1 oops=panic $loglevel rdinit=/init mitigations=off ${VM_APPEND:-}" \
    -serial "file:$RUN/console.log" \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" "${qemu_rw[@]}" \
    -device virtio-serial-pci \
    -chardev "file,id=out,path=$RUN/out" -device virtserialport,chardev=out,name=vm.out \
    -chardev "file,id=err,path=$RUN/err" -device virtserialport,chardev=err,name=vm.err \
    -chardev "file,id=rc,path=$RUN/rc" -device virtserialport,chardev=rc,name=vm.rc \
    < /dev/null &
QPID=$!
set +e; wait "$QPID"; qrc=$?; QPID=""
# if qemu died before opening the FIFOs, unblock the cats (O_RDWR opens a FIFO without blocking)
: 5<>"$RUN/out" 6<>"$RUN/err"
wait "$CAT1" "$CAT2"; CAT1=""; CAT2=""; set -e
T_END=$(date +%s.%N)
res=$(cat "$RUN/rc")
rc=$(sed -n 's/^rc=\([0-9]*\).*/\1/p' <<<"$res")
if [ -z "$rc" ]; then
    rc=125
    if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then echo "run-in-vm: timed out after ${VM_TIMEOUT:-1200}s" >&2; rc=124; fi
    echo "run-in-vm: the VM did not report an exit status (qemu rc $qrc); console:" >&2
    tail -n 80 "$RUN/console.log" 2>/dev/null | tr -d '\r' >&2 || true
fi
[ "${VM_VERBOSE:-0}" = 1 ] && { echo "---- console"; tr -d '\r' < "$RUN/console.log"; } >&2
boot=$(sed -n 's/.* boot=\([0-9.]*\).*/\1/p' <<<"$res"); end=$(sed -n 's/.* end=\([0-9.]*\).*/\1/p' <<<"$res")
say "$(awk -v s="$T_START" -v b="$T_BOOT" -v e="$T_END" -v up="${boot:-0}" -v en="${end:-0}" -v rc="$rc" 'BEGIN{
    printf "rc %s; prepare %.1fs, guest boot to command %.1fs, command %.1fs, qemu total %.1fs, wall %.1fs", rc, b-s, up, en-up, e-b, e-s}')"
exit "$rc"
