#!/bin/sh
# System packages the tests need that pip cannot provide: Mosquitto (the
# MQTT broker) and Chromium (the browser test). As root it installs them
# with apt-get, without questions; otherwise it says in one line what to run.
set -eu
missing=""
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    missing="$missing mosquitto"
fi
if ! command -v chromium >/dev/null 2>&1; then
    missing="$missing chromium"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "onboard setup: installing$missing with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends$missing >/dev/null
else
    echo "onboard setup: missing$missing; run: sudo apt-get install$missing" >&2
fi
