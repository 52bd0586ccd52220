#!/bin/sh
# Debian with systemd, configured for a read-only root. $1: the root directory.
set -eu
root=$1
# mmdebstrap copies the build host's name; the first boot sets this device's.
echo plantd > "$root/etc/hostname"
# systemd's first-boot semantics: an empty machine-id (the initramfs binds the data partition's
# copy over it; see the readonly layer).
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
ln -sf /etc/machine-id "$root/var/lib/dbus/machine-id"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
# Root has no password (locked, '*'): log in with an SSH key (docs/appliance.md).
grep -q '^root:\*:' "$root/etc/shadow"
systemctl --root="$root" enable systemd-networkd.service systemd-resolved.service \
    systemd-timesyncd.service
# Nothing waits for the network to be "online": plantd's modules retry their devices.
systemctl --root="$root" mask systemd-networkd-wait-online.service
# A headless controller: no graphical.target.
systemctl --root="$root" set-default multi-user.target
