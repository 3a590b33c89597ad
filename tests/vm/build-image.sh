#!/usr/bin/env bash
# Builds (once) the Debian 12 guest used by tests/vm/vm-test.sh: a debootstrap minbase tree with
# Debian's kernel 6.1 and the 6.12 kernel from bookworm-backports (they pin file mappings
# differently, see issue 14), a kernel from trixie-backports whose rxe pages on demand (ODP,
# Linux >= 6.14; 6.16 preferred, its version in boot/odp-kernel), rdma-core and the runtime
# libraries of the project's binaries,
# packed into an ext4 image. The result lives outside the source tree in
#   ${SWRDMA_VM_CACHE:-/var/cache/swrdma/vm}/<hash of the inputs>/
# and is reused while the inputs (this script, guest-init, guest-packages.txt, the mirror) are
# unchanged. Prints the image directory as its last line.
#
# usage: build-image.sh            (env: SWRDMA_VM_CACHE, SWRDMA_VM_MIRROR)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${SWRDMA_VM_CACHE:-/var/cache/swrdma/vm}
# The host's own Debian mirror (reachable from here), else the default one.
default_mirror() {
  local m=""
  [ -r /etc/apt/sources.list.d/debian.sources ] &&
    m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  [ -z "$m" ] && [ -r /etc/apt/sources.list ] &&
    m=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list)
  echo "${m:-http://deb.debian.org/debian}"
}
MIRROR=${SWRDMA_VM_MIRROR:-$(default_mirror)}
SUITE=bookworm
# The kernels are installed after debootstrap, once the initramfs is configured to hold only
# what this VM boots from (a small initrd is built in seconds instead of minutes).
ALL_PKGS=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$HERE/guest-packages.txt")
PKGS=$(grep -v '^linux-image' <<<"$ALL_PKGS" | tr -s ' \n' ',' | sed 's/,$//')
KERNEL_PKGS=$(grep '^linux-image' <<<"$ALL_PKGS" | tr '\n' ' ')

HASH=$( { cat "$0" "$HERE/guest-init" "$HERE/guest-packages.txt"; echo "$MIRROR $SUITE"; } |
        sha256sum | cut -c1-16)
DIR=$CACHE/$HASH
log() { printf '[vm-image +%4ds] %s\n' "$SECONDS" "$*" >&2; }

if [ -f "$DIR/ready" ]; then
  log "cached image $DIR"
  echo "$DIR"
  exit 0
fi
for tool in debootstrap mkfs.ext4 chroot; do
  command -v "$tool" >/dev/null || {
    echo "error: $tool not found; run scripts/install-vm-deps.sh (as root)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "error: building the guest image needs root (debootstrap, chroot)" >&2; exit 1; }

mkdir -p "$CACHE"
# One builder at a time; a second caller waits and then finds the image ready.
exec 9>"$CACHE/.lock"
if ! flock -w 1200 9; then
  echo "error: another build of the guest image holds $CACHE/.lock for over 20 min" >&2; exit 1
fi
if [ -f "$DIR/ready" ]; then log "built meanwhile: $DIR"; echo "$DIR"; exit 0; fi

WORK=$CACHE/$HASH.tmp
rm -rf "$WORK"
mkdir -p "$WORK/boot"
ROOT=$WORK/rootfs
BLOG=$WORK/build.log
cleanup() {
  local rc=$?
  for m in proc sys dev; do umount "$ROOT/$m" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    echo "error: building the guest image failed (rc=$rc); log: $BLOG (last lines below)" >&2
    tail -n 25 "$BLOG" >&2 || true
  fi
}
trap cleanup EXIT

log "debootstrap $SUITE minbase from $MIRROR into $ROOT (about 2-4 min; log $BLOG)"
debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$ROOT" "$MIRROR" >"$BLOG" 2>&1 &
DB=$!
while kill -0 $DB 2>/dev/null; do
  sleep 15
  kill -0 $DB 2>/dev/null && log "  debootstrap: $(grep -cE '^I: (Retrieving|Extracting|Unpacking|Configuring)' "$BLOG") steps, last: $(tail -n1 "$BLOG" | cut -c1-70)"
done
wait $DB

log "kernels: ${KERNEL_PKGS}from $SUITE and 6.12 from $SUITE-backports (about 1 min)"
mkdir -p "$ROOT/etc/initramfs-tools/conf.d"
echo "MODULES=list" >"$ROOT/etc/initramfs-tools/conf.d/swrdma-vm"
printf '%s\n' virtio_pci virtio_blk ext4 crc32c_generic >>"$ROOT/etc/initramfs-tools/modules"
# shellcheck disable=SC2086
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  $KERNEL_PKGS >>"$BLOG" 2>&1
echo "deb $MIRROR $SUITE-backports main" >"$ROOT/etc/apt/sources.list.d/backports.list"
chroot "$ROOT" apt-get update -q >>"$BLOG" 2>&1
BPO_IMAGE=$(chroot "$ROOT" apt-cache depends -t "$SUITE-backports" linux-image-amd64 |
            awk '/Depends: linux-image-6/{print $2; exit}')
[ -n "$BPO_IMAGE" ] || { echo "error: no linux-image-6.* in $SUITE-backports at $MIRROR" >&2; exit 1; }
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  -t "$SUITE-backports" "$BPO_IMAGE" >>"$BLOG" 2>&1
rm -f "$ROOT/etc/apt/sources.list.d/backports.list"

# On-demand paging: rxe has it from Linux 6.14 (6.1 and 6.12 report none). Debian ships such
# kernels in trixie-backports; their dependencies (kmod, initramfs-tools, linux-base >= 4.12)
# are met by bookworm, so only the kernel package comes from there. 6.16 (measured here) when
# the mirror has it, else the newest 6.x from 6.14 on; 7.x packages do not install on bookworm
# (their maintainer scripts need a newer run-parts).
log "ODP kernel from trixie-backports (about 1-2 min: a 170 MB package)"
echo "deb $MIRROR trixie-backports main" >"$ROOT/etc/apt/sources.list.d/odp.list"
chroot "$ROOT" apt-get update -q >>"$BLOG" 2>&1
ODP_NAMES=$(chroot "$ROOT" apt-cache pkgnames linux-image-6. |
            grep -E '^linux-image-6\.[0-9]+\.[0-9]+\+deb13-amd64$' | sort -V |
            awk -F'[-.]' '$4 >= 14')
ODP_IMAGE=$(grep -E '^linux-image-6\.16\.' <<<"$ODP_NAMES" | tail -n1)
[ -n "$ODP_IMAGE" ] || ODP_IMAGE=$(tail -n1 <<<"$ODP_NAMES")
[ -n "$ODP_IMAGE" ] || { echo "error: no linux-image-6.x (>= 6.14) in trixie-backports at $MIRROR" >&2; exit 1; }
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  -t trixie-backports "$ODP_IMAGE" >>"$BLOG" 2>&1
rm -f "$ROOT/etc/apt/sources.list.d/odp.list"
chroot "$ROOT" apt-get clean >>"$BLOG" 2>&1

log "trimming the tree (docs, locales, drivers a VM without devices never loads)"
rm -rf "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/* \
       "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin
for kdir in "$ROOT"/lib/modules/*; do
  for d in drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet drivers/staging \
           drivers/iio drivers/bluetooth drivers/scsi drivers/usb drivers/hid drivers/input \
           drivers/infiniband/hw sound net/bluetooth net/wireless net/mac80211; do
    rm -rf "${kdir:?}/kernel/$d"
  done
  chroot "$ROOT" depmod -a "$(basename "$kdir")"
done

install -m 755 "$HERE/guest-init" "$ROOT/sbin/swrdma-vm-init"
echo swrdma-vm >"$ROOT/etc/hostname"
mkdir -p "$ROOT/mnt/out"
cp "$ROOT"/boot/vmlinuz-* "$ROOT"/boot/initrd.img-* "$WORK/boot/"
echo "${ODP_IMAGE#linux-image-}" >"$WORK/boot/odp-kernel"
{
  echo "mirror: $MIRROR"
  echo "suite: $SUITE"
  echo "kernels: $(cd "$WORK/boot" && ls vmlinuz-* | sed 's/vmlinuz-//' | tr '\n' ' ')"
  echo "packages: $PKGS"
  chroot "$ROOT" dpkg-query -W -f='${Package} ${Version}\n' | grep -E '^(rdma-core|libibverbs1|librdmacm1|libucx0|linux-image)'
} >"$WORK/manifest.txt"

SIZE_MB=$(( $(du -sm "$ROOT" | cut -f1) + 768 ))
log "ext4 image of ${SIZE_MB} MiB (mkfs.ext4 -d)"
truncate -s "${SIZE_MB}M" "$WORK/rootfs.img"
mkfs.ext4 -q -F -L swrdma-vm -d "$ROOT" "$WORK/rootfs.img" >>"$BLOG" 2>&1
rm -rf "$ROOT"

touch "$WORK/ready"
rm -rf "$DIR"
mv "$WORK" "$DIR"
# Older images (other hashes) are left for a while: another worktree may still use them.
log "image ready: $DIR ($(du -sh "$DIR/rootfs.img" | cut -f1), $(cat "$DIR/manifest.txt" | sed -n 's/^kernels: //p'))"
echo "$DIR"
