#!/bin/sh
# Install what building and boot-testing the images needs (Debian bookworm host, as root):
#   image/deps.sh            amd64 image: mmdebstrap, genimage, QEMU (x86), OpenSSH client, …
#   image/deps.sh --arm64    also the Raspberry Pi image: qemu-user-static, binfmt_misc
# Does nothing when everything is there already; as another user it only says what is missing.
set -eu

# rauc, squashfs-tools, openssl: the signed update bundle; ovmf: UEFI firmware, so that QEMU
# boots through systemd-boot (A/B slots and boot counting) as a real machine does.
packages="mmdebstrap genimage e2fsprogs dosfstools mtools fdisk zstd qemu-system-x86 \
    qemu-utils openssh-client debian-archive-keyring rauc squashfs-tools openssl ovmf"
tools="mmdebstrap genimage mke2fs mkdosfs mcopy sfdisk zstd qemu-system-x86_64 ssh ssh-keygen \
    rauc mksquashfs openssl"
if [ "${1:-}" = --arm64 ]; then
    packages="$packages qemu-user-static binfmt-support arch-test"
    tools="$tools qemu-aarch64-static arch-test"
fi

missing=""
for tool in $tools; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || missing="$missing OVMF"
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "image/deps.sh: missing:$missing (run as root to install: $packages)" >&2
        exit 1
    fi
    echo "image/deps.sh: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $packages >/dev/null
fi

if [ "${1:-}" = --arm64 ]; then
    # Foreign binaries in the arm64 root (mmdebstrap runs its maintainer scripts) need
    # binfmt_misc with qemu-aarch64 registered, "F" (fix binary) so that it works in a chroot.
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        update-binfmts --enable qemu-aarch64 2>/dev/null ||
            /usr/lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-aarch64.conf
    fi
    test -e /proc/sys/fs/binfmt_misc/qemu-aarch64
fi
