#!/bin/sh
# plantd: the virtual environment, the units and their generator, the user, the defaults.
set -eu
root=$1
repo=$PLANTD_IMAGE_REPO
units=$root/usr/lib/systemd/system

install -m 0644 "$repo"/systemd/*.service "$repo"/systemd/*.target "$repo"/systemd/*.path "$units/"
install -D -m 0755 "$repo/systemd/plantd-module-generator" \
    "$root/usr/lib/systemd/system-generators/plantd-module-generator"
install -D -m 0644 "$repo/systemd/plantd.sysusers" "$root/usr/lib/sysusers.d/plantd.conf"
install -D -m 0644 "$repo/systemd/plantd.tmpfiles" "$root/usr/lib/tmpfiles.d/plantd.conf"
install -D -m 0644 "$repo/systemd/60-plantd-gpio.rules" "$root/usr/lib/udev/rules.d/60-plantd-gpio.rules"
for doc in appliance.md configuration.md security.md audit.md state.md historian.md sinks.md observability.md \
    app.md bus.md protocol.md control.md control-cli.md reload.md; do
    if [ -f "$repo/docs/$doc" ]; then
        install -D -m 0644 "$repo/docs/$doc" "$root/usr/share/doc/plantd/$doc"
    fi
done
if [ -d "$repo/docs/drivers" ]; then
    cp -r "$repo/docs/drivers" "$root/usr/share/doc/plantd/"
fi
install -m 0644 "$repo/examples/modules.d/energy-meter.yaml" \
    "$root/etc/plantd/modules.d/energy-meter.yaml.example"

chroot "$root" systemd-sysusers /usr/lib/sysusers.d/plantd.conf
chroot "$root" systemd-tmpfiles --create /usr/lib/tmpfiles.d/plantd.conf

chroot "$root" python3 -m venv --without-pip /opt/plantd/venv
"$PLANTD_IMAGE_PYTHON" "$PLANTD_IMAGE_DIR/build.py" install-venv "$root"
ln -sf /opt/plantd/venv/bin/plant "$root/usr/local/bin/plant"
echo "$PLANTD_IMAGE_VERSION" > "$root/opt/plantd/VERSION"

systemctl --root="$root" enable plantd.target plantd-keys.service plantd-broker.service \
    plantd-state.service plantd-historian.service plantd-logger.service plantd-proxy.service \
    plantd-control.service
# Hot-plug: a change to modules.d/ or sinks.d/ runs `plant reload` (docs/reload.md).
systemctl --root="$root" enable plantd-reload.path
systemctl --root="$root" enable plantd-update.path  # updates from the web app (appliance.md)
