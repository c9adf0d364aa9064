#!/usr/bin/env bash
# Build the awsc node image: Debian 12 (bookworm) with systemd as PID 1, sshd and python3, from
# debootstrap (no registry is needed), imported into podman as localhost/awsc-node:bookworm.
# It stands in for the Debian 12 AMI: the roles start from this bare system (no apt lists), so tests
# and benchmarks measure a full configure.
#
#   images/node/build.sh            build unless the image exists (fast CI re-runs)
#   AWSC_NODE_REBUILD=1 images/node/build.sh   rebuild
#   AWSC_NODE_FROM=registry images/node/build.sh   build FROM debian:12 (images/node/Containerfile)
#                                   on machines that can pull; not exercised where none is reachable
#
# Env: AWSC_NODE_IMAGE (default localhost/awsc-node:bookworm), DEBIAN_MIRROR
# (default http://deb.debian.org/debian), CONTAINERS_CONF (default: the project's containers.conf).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
image="${AWSC_NODE_IMAGE:-localhost/awsc-node:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/../containers.conf}"

if [[ "${AWSC_NODE_REBUILD:-0}" != 1 ]] && podman image exists "$image"; then
  echo "build.sh: $image exists (AWSC_NODE_REBUILD=1 to rebuild)"
  exit 0
fi

if [[ "${AWSC_NODE_FROM:-debootstrap}" == registry ]]; then
  podman build --file "$here/Containerfile" --tag "$image" "$here"
  echo "build.sh: built $image from debian:12"
  exit 0
fi

for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool not found (make system-deps)" >&2; exit 1; }
done

rootfs="$(mktemp -d /var/tmp/awsc-node.XXXXXX)"
trap 'rm -rf --one-file-system "$rootfs"' EXIT
# debootstrap's and podman's own output go to the log: one line per step here.
log="${AWSC_NODE_LOG:-/var/tmp/awsc-node-build.log}"
: >"$log"
step() {
  echo "build.sh: $1"
  shift
  "$@" >>"$log" 2>&1 || { tail -n 20 "$log" >&2; echo "build.sh: failed, see $log" >&2; exit 1; }
}

# What a Debian cloud image brings that the roles rely on: systemd, sshd, python3, sudo.
packages=systemd,systemd-sysv,dbus,openssh-server,python3,sudo,iproute2,iputils-ping,ca-certificates,procps
step "debootstrap Debian 12 into $rootfs (log: $log)" \
  debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror"
echo "build.sh: set up systemd, sshd's first-boot host keys and the hosts file"

cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://security.debian.org/debian-security bookworm-security main
SOURCES

# As on the AMI: localhost resolves from /etc/hosts (the common role adds the cluster's nodes).
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n' \
  >"$rootfs/etc/hosts"

# Each container gets its own machine id and host name at boot.
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/etc/hostname" "$rootfs/var/lib/dbus/machine-id"

# Host keys are per node: drop the baked ones, generate them at first boot before sshd starts.
rm -f "$rootfs"/etc/ssh/ssh_host_*
install -m 0644 "$here/awsc-ssh-hostkeys.service" "$rootfs/etc/systemd/system/"
mkdir -p "$rootfs/etc/systemd/system/ssh.service.wants" "$rootfs/etc/systemd/system/multi-user.target.wants"
ln -sf ../awsc-ssh-hostkeys.service "$rootfs/etc/systemd/system/ssh.service.wants/"
ln -sf ../awsc-ssh-hostkeys.service "$rootfs/etc/systemd/system/multi-user.target.wants/"

# Units that only make sense on real hardware or slow a container's boot.
for unit in getty@tty1.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done

# Like the AMI: no apt lists, no cached packages (the roles run `apt update`).
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/var/log/*.log "$rootfs"/tmp/*

import_rootfs() {
  tar --numeric-owner -C "$rootfs" -c . |
    podman import --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' - "$image"
}
step "import it into podman as $image" import_rootfs
echo "build.sh: imported $image"
