#!/usr/bin/env bash
# Builds the tiny test guest for the QEMU guest agent end-to-end test and prints the directory
# that holds it (vmlinuz, initrd.gz, manifest). The guest is a Debian cloud kernel plus a busybox
# initramfs running the HOST's qemu-ga on its virtio-serial port; kernel and busybox are fetched
# with `apt-get download` (never installed). The result is cached, keyed by the package versions,
# the qemu-ga binary and this script, so a second run only prints the path.
#
# Needs: apt-get/apt-cache with package lists (apt-get update), dpkg-deb, gzip, sha256sum, ldd,
# /usr/sbin/qemu-ga (package qemu-guest-agent). Cache root: $QUBES_IAC_CACHE, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/qubes-iac.
set -euo pipefail

die() { echo "qga-vm-image: $*" >&2; exit 1; }

QGA=/usr/sbin/qemu-ga
[ -x "$QGA" ] || die "$QGA not found: install the Debian package qemu-guest-agent"
for tool in apt-get apt-cache dpkg-deb gzip sha256sum ldd; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

# One apt-cache call (each one re-reads the package lists when there is no binary cache): the
# candidate cloud meta-package pins its kernel package and version, e.g.
# `Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)`.
SHOW=$(apt-cache show --no-all-versions linux-image-cloud-amd64 busybox-static 2>/dev/null || true)
read -r KPKG KVER < <(printf '%s\n' "$SHOW" | sed -n 's/^Depends:.*\(linux-image-[^ ,]*\) (= \([^)]*\)).*/\1 \2/p' | head -n1) || true
BBVER=$(printf '%s\n' "$SHOW" | awk '/^Package: busybox-static$/ { p = 1 } p && /^Version:/ { print $2; exit }')
[ -n "${KPKG:-}" ] && [ -n "${KVER:-}" ] && [ -n "$BBVER" ] || die "apt-cache knows no linux-image-cloud-amd64 or busybox-static: run apt-get update first"

KEY=$( {
  echo "$KPKG $KVER"
  echo "busybox-static $BBVER"
  sha256sum "$QGA" | cut -d' ' -f1
  sha256sum "$0" | cut -d' ' -f1
} | sha256sum | cut -c1-16)

CACHE_ROOT=${QUBES_IAC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qubes-iac}
OUT="$CACHE_ROOT/qga-vm/$KEY"
if [ -f "$OUT/manifest" ] && [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.gz" ]; then
  echo "$OUT"
  exit 0
fi

mkdir -p "$CACHE_ROOT/qga-vm"
WORK=$(mktemp -d "$CACHE_ROOT/qga-vm/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# As root, apt's download sandbox user (_apt) cannot write into this private directory.
SANDBOX=()
[ "$(id -u)" = 0 ] && SANDBOX=(-o APT::Sandbox::User=root)
apt-get download -q "${SANDBOX[@]}" "$KPKG=$KVER" "busybox-static=$BBVER" >&2
dpkg-deb -x "$KPKG"_*.deb kernel
dpkg-deb -x busybox-static_*.deb busybox

BB="$WORK/busybox/bin/busybox"
KREL=${KPKG#linux-image-}
MODDIR="kernel/lib/modules/$KREL/kernel"
[ -f "kernel/boot/vmlinuz-$KREL" ] || die "no vmlinuz in $KPKG"

ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,sbin,dev,proc,sys,run,tmp,etc,mnt/data,lib/modules,usr/sbin}
cp "$BB" "$ROOT/bin/busybox"
cp "$QGA" "$ROOT/usr/sbin/qemu-ga"

# qemu-ga's shared libraries at the paths ldd names, plus the dynamic loader.
ldd "$QGA" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | sort -u | while read -r lib; do
  mkdir -p "$ROOT$(dirname "$lib")"
  cp -L "$lib" "$ROOT$lib"
done

# Kernel modules the Debian cloud kernel builds as modules (ext4, jbd2, crc16 and crc32c are
# built in), with their dependencies read from each module's own `depends=` field (no kmod/depmod
# needed), written as a load order for /init.
declare -A SEEN=()
ORDER=()
add_module() {
  local name=$1 path dep deps
  [ -n "${SEEN[$name]:-}" ] && return 0
  SEEN[$name]=1
  path=$(find "$MODDIR" -name "$name.ko" -print -quit)
  [ -n "$path" ] || die "module $name not found in $KPKG"
  deps=$(tr '\0' '\n' < "$path" | sed -n 's/^depends=//p' | tr ',' ' ')
  for dep in $deps; do add_module "$dep"; done
  cp "$path" "$ROOT/lib/modules/$name.ko"
  ORDER+=("$name")
}
for m in virtio_pci virtio_console virtio_blk; do add_module "$m"; done
printf '%s\n' "${ORDER[@]}" > "$ROOT/lib/modules/load-order"

cat > "$ROOT/etc/os-release" <<'EOF'
NAME="qubes-iac test guest"
ID=qiac-test-guest
VERSION_ID=1
VERSION="1 (busybox initramfs)"
PRETTY_NAME="qubes-iac test guest 1"
EOF

# qemu-ga 7.2 runs /sbin/shutdown for guest-shutdown; there is no init system, so power off directly
# after flushing the data disk.
cat > "$ROOT/sbin/shutdown" <<'EOF'
#!/bin/busybox sh
sync
umount /mnt/data 2>/dev/null
exec /bin/busybox poweroff -f
EOF
chmod 755 "$ROOT/sbin/shutdown"

cat > "$ROOT/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
for m in $(cat /lib/modules/load-order); do insmod "/lib/modules/$m.ko"; done
hostname qga-test-vm

# This guest deliberately has no suspend support (the test checks guest-suspend-* error paths and
# must not put the VM to sleep): hide /sys/power/state from qemu-ga.
mount -t tmpfs -o ro,size=4k none /sys/power

i=0
while [ ! -e /sys/class/virtio-ports/vport0p1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /dev/virtio-ports
for p in /sys/class/virtio-ports/*; do
  [ -f "$p/name" ] && ln -sf "/dev/$(basename "$p")" "/dev/virtio-ports/$(cat "$p/name")"
done

i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ -b /dev/vda ]; then
  mount -t ext4 /dev/vda /mnt/data && echo "qga-test-vm: /dev/vda mounted on /mnt/data"
fi

echo "qga-test-vm: starting qemu-ga"
qemu-ga -m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0 -t /run \
  -b guest-exec,guest-exec-status,guest-set-user-password,guest-ssh-add-authorized-keys,guest-ssh-remove-authorized-keys
echo "qga-test-vm: qemu-ga exited with status $?"
sync
poweroff -f
EOF
chmod 755 "$ROOT/init"

(cd "$ROOT" && find . | "$BB" cpio -o -H newc 2>/dev/null | gzip -1) > initrd.gz

STAGE="$WORK/out"
mkdir -p "$STAGE"
cp "kernel/boot/vmlinuz-$KREL" "$STAGE/vmlinuz"
mv initrd.gz "$STAGE/initrd.gz"
{
  echo "kernel $KPKG $KVER"
  echo "busybox-static $BBVER"
  echo "qemu-ga $("$QGA" --version | head -n1)"
  echo "modules ${ORDER[*]}"
} > "$STAGE/manifest"

# Another build may have finished first; its result is the same image, so keep it.
[ -d "$OUT" ] && [ ! -f "$OUT/manifest" ] && rm -rf "$OUT"
mv -T "$STAGE" "$OUT" 2>/dev/null || [ -f "$OUT/manifest" ] || die "cannot move the image to $OUT"
# Images for older package versions are never used again.
find "$CACHE_ROOT/qga-vm" -mindepth 1 -maxdepth 1 -type d ! -name "$KEY" ! -name '.build.*' -exec rm -rf {} +
echo "$OUT"
