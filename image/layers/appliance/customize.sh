#!/bin/sh
set -eu
root=$1
chmod 0755 "$root/usr/lib/plantd/firstboot" "$root/usr/lib/plantd/provision"
systemctl --root="$root" enable plantd-firstboot.service plantd-provision.service
