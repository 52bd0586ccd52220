#!/bin/sh
# The boot partition as raspi-firmware's kernel hook made it (firmware blobs, DTBs, kernel,
# initrd, config.txt), with this image's kernel command line: root=PARTUUID= of slot A,
# read-only. (The hook guessed root= from the build's chroot.) An update to slot B uses
# config.txt's os_prefix= and tryboot (docs/appliance.md, "Updates").
set -eu
root=$1
fw=$root/boot/firmware
test -s "$fw/config.txt"
ls "$fw"/bcm27*.dtb >/dev/null
printf '%s\n' "$PLANTD_IMAGE_CMDLINE" > "$fw/cmdline.txt"
