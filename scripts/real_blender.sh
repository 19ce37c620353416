#!/usr/bin/env bash
# Provisions a real Blender (Debian 13 "trixie" package, 4.3.2) in a root filesystem under
# .cache/real-blender/, idempotently, and writes a `blender` wrapper beside it that runs that
# Blender through chroot with this repository (and /tmp) visible at the same paths. The wrapper
# can be given as BLENDER_EXECUTABLE.
#
# Prints the wrapper's path on stdout. Exits 3 (and says why on stderr) where it cannot be
# provisioned: not root, or the Debian registry is unreachable. Callers skip only the
# real-Blender tiers then.
#
# Why a root filesystem: the host runs Debian 12, whose Blender (3.4) predates extensions; trixie
# packages 4.3.2 built against its own libraries and Python 3.13. Official Blender bundles
# requests and numpy; Debian's does not, hence python3-requests and python3-numpy.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$REPO/.cache/real-blender"
ROOTFS="$CACHE/rootfs"
WRAPPER="$CACHE/blender"
PACKAGES="blender,python3-requests,python3-numpy,python3-pip,xvfb,xauth,xdotool,imagemagick,libgl1-mesa-dri,x11-utils"
STAMP="$CACHE/.provisioned"

unavailable() { echo "[real-blender] cannot provision a real Blender: $*" >&2; exit 3; }

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$PACKAGES" ]; then
  [ "$(id -u)" = 0 ] || unavailable "building and entering the root filesystem needs root (chroot)"
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap; } >/dev/null 2>&1 \
      || unavailable "mmdebstrap could not be installed from the Debian registry"
  fi
  rm -rf "$ROOTFS" && mkdir -p "$CACHE"
  echo "[real-blender] building a Debian trixie root filesystem with Blender (about 2 min)" >&2
  if ! mmdebstrap --variant=apt --include="$PACKAGES" trixie "$ROOTFS" \
       >"$CACHE/mmdebstrap.log" 2>&1; then
    tail -n 20 "$CACHE/mmdebstrap.log" >&2
    rm -rf "$ROOTFS"
    unavailable "mmdebstrap failed (is the Debian registry reachable?), log: $CACHE/mmdebstrap.log"
  fi
  touch "$ROOTFS/.tripo-real-blender-rootfs"
  printf '%s' "$PACKAGES" > "$STAMP"
fi

# chroot-run: runs a command inside with the kernel file systems, /tmp, the repository and the
# working directory bound at the same paths; `blender` below is that wrapper around Blender.
cat > "$CACHE/chroot-run" <<WRAP
#!/usr/bin/env bash
# Runs a command inside the real-Blender root filesystem with host paths visible unchanged.
# The bind mounts live in a private mount namespace that ends with the command, so nothing stays
# mounted under .cache (where an \`rm -rf\` would otherwise reach the host's /tmp or repository).
set -euo pipefail
# Already inside (a test or the emulator started from inside Blender): run it directly.
[ -f /.tripo-real-blender-rootfs ] && exec "\$@"
export TRIPO_ROOTFS="$ROOTFS" TRIPO_BINDS="/proc /sys /dev /tmp $REPO \$(pwd) \${TRIPO_CHROOT_BINDS:-}"
exec unshare --mount --propagation private -- /bin/bash -c '
  set -e
  for path in \$TRIPO_BINDS; do
    [ "\$path" != / ] && [ -e "\$path" ] || continue
    mkdir -p "\$TRIPO_ROOTFS\$path"
    mountpoint -q "\$TRIPO_ROOTFS\$path" || mount --rbind "\$path" "\$TRIPO_ROOTFS\$path"
  done
  cp -f /etc/resolv.conf "\$TRIPO_ROOTFS/etc/resolv.conf" 2>/dev/null || true
  exec chroot "\$TRIPO_ROOTFS" /usr/bin/env -C "\$(pwd)" "\$@"' chroot-run "\$@"
WRAP
chmod +x "$CACHE/chroot-run"
cat > "$WRAPPER" <<WRAP
#!/usr/bin/env bash
# A real Blender 4.3.2 (Debian trixie) in $ROOTFS, usable as BLENDER_EXECUTABLE.
exec "$CACHE/chroot-run" /usr/bin/blender "\$@"
WRAP
chmod +x "$WRAPPER"
echo "$WRAPPER"
