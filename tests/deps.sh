#!/bin/sh
# Install what the tests need beyond the image's tools (Debian bookworm host, as root):
# - Debian's `prometheus` package, for /usr/bin/promtool (tests/unit/test_monitoring_files.py
#   checks config/monitoring/ with it). Only the tools are wanted, not a running Prometheus:
#   the package's service is kept from starting (policy-rc.d) and stopped if it started anyway.
# - Debian's `chromium`, for /usr/bin/chromium: the browser tests (tests/browser/) drive it with
#   Playwright for Python, which never downloads a browser of its own. Without recommends (no
#   sandbox helper, no desktop integration), plus fonts-liberation so that screenshots have text.
# Installs only what is missing and does nothing when everything is there; as another user it
# only says what is missing. Nothing is fetched at test time.
set -eu

missing=""
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
[ -x /usr/bin/chromium ] || missing="$missing chromium fonts-liberation"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "tests/deps.sh: missing Debian packages:$missing (run as root to install them)" >&2
    exit 1
fi
echo "tests/deps.sh: installing Debian packages:$missing"

# invoke-rc.d and deb-systemd-invoke ask /usr/sbin/policy-rc.d; 101 = "not allowed".
policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    ours=1
fi
cleanup() { if [ -n "$ours" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
apt-get update -qq
# $missing is a list of package names: split on purpose.
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null

case "$missing" in
*prometheus*)
    # Belt and braces: the package's daemon (on :9090) must not be left running.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/prometheus ]; then
        /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    fi
    ;;
esac
command -v promtool >/dev/null
[ -x /usr/bin/chromium ]
