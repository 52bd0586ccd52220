#!/bin/sh
# The ESP (/boot/firmware, the boot partition): systemd-boot and slot A's kernel, initrd and
# boot entry. An update writes the other slot's beside them, as a newer entry on trial
# (plantd/system/_slots.py: no `default` here, the first entry in systemd-boot's order boots;
# docs/appliance.md, "Updates").
set -eu
root=$1
esp=$root/boot/firmware
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n 1)
version=${kernel##*/vmlinuz-}
install -D -m 0644 "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$esp/EFI/BOOT/BOOTX64.EFI"
install -D -m 0644 "$kernel" "$esp/a/vmlinuz"
install -D -m 0644 "$root/boot/initrd.img-$version" "$esp/a/initrd.img"
mkdir -p "$esp/loader/entries"
cat > "$esp/loader/loader.conf" <<END
timeout 3
editor no
END
cat > "$esp/loader/entries/plantd-1-a.conf" <<END
title   plantd $PLANTD_IMAGE_VERSION (slot A)
linux   /a/vmlinuz
initrd  /a/initrd.img
options $PLANTD_IMAGE_CMDLINE
END
