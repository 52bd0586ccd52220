#!/bin/sh
# A/B updates: RAUC's system.conf for this target, the key ring bundles must be signed
# against, the kernel command line each slot's boot entry is written from, and the health gate.
set -eu
root=$1
install -d -m 0755 "$root/etc/rauc" "$root/usr/lib/plantd"
# Slots by GPT partition name (genimage names them root-a, root-b): the same in every build,
# so that a bundle's root file system fits every device built from the same target.
cat > "$root/etc/rauc/system.conf" <<END
[system]
compatible=plantd-$PLANTD_IMAGE_TARGET
bootloader=custom
mountprefix=/run/rauc
statusfile=/var/lib/rauc/central.raucs
bundle-formats=-plain

[keyring]
path=/etc/rauc/keyring.pem

[handlers]
bootloader-custom-backend=/opt/plantd/venv/bin/plantd-slots

[slot.rootfs.0]
device=/dev/disk/by-partlabel/root-a
type=ext4
bootname=a

[slot.rootfs.1]
device=/dev/disk/by-partlabel/root-b
type=ext4
bootname=b
END
install -m 0644 "$PLANTD_IMAGE_KEYRING" "$root/etc/rauc/keyring.pem"
# {root_partuuid} and {slot} are filled in by plantd-slots when it writes a slot's entry.
printf '%s\n' "$PLANTD_IMAGE_CMDLINE_TEMPLATE" > "$root/usr/lib/plantd/cmdline"
printf '%s\n' "$PLANTD_IMAGE_VERSION" > "$root/usr/lib/plantd/version"
systemctl --root="$root" enable plantd-boot-check.service
