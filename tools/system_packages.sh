#!/usr/bin/env bash
# Debian packages the viewer and its tests need: offscreen GL (OSMesa), a virtual X server and
# input simulation for the GUI tests; more packages may be named as arguments (`make test` adds
# openssh-server: the remote viewer's ssh round trip starts its own sshd on 127.0.0.1). As root,
# installs the missing ones; otherwise names them.
set -u
PACKAGES=(xvfb xauth xdotool libosmesa6 libgl1 libegl1 "$@")
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
        >/dev/null || { echo "error: apt-get could not install: ${missing[*]}" >&2; exit 1; }
else
    echo "warning: missing system packages: ${missing[*]} (install them with:" \
         "sudo apt-get install ${missing[*]})" >&2
fi
