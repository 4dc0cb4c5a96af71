#!/bin/sh
# System packages the tests need that pip cannot provide: Mosquitto (the
# MQTT broker), Chromium (the browser test) and the shared libraries the
# emulated ESP32 (../shared/tools/esp32-qemu) loads. As root it installs them
# with apt-get, without questions; otherwise it says in one line what to run.
set -eu
missing=""
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    missing="$missing mosquitto"
fi
if ! command -v chromium >/dev/null 2>&1; then
    missing="$missing chromium"
fi
# the emulator's runtime libraries (Debian package: the library it provides)
for pkg_lib in libslirp0:libslirp.so.0 libglib2.0-0:libglib-2.0.so.0 \
        libpixman-1-0:libpixman-1.so.0 libgcrypt20:libgcrypt.so.20; do
    if ! "$(command -v ldconfig || echo /sbin/ldconfig)" -p 2>/dev/null | grep -q "${pkg_lib#*:} "; then
        missing="$missing ${pkg_lib%%:*}"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "onboard setup: installing$missing with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends$missing >/dev/null
else
    echo "onboard setup: missing$missing; run: sudo apt-get install$missing" >&2
fi
