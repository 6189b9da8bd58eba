#!/usr/bin/env bash
# Installs everything Arca's build, demo and test suite need on Debian 12 (run as root, or with sudo present).
# Idempotent: packages already installed are skipped by apt.
set -euo pipefail

PACKAGES=(
  # build
  build-essential pkg-config protobuf-compiler git curl ca-certificates file
  # images: OCI tools used by tests as independent validators, a local registry, podman to run images
  podman skopeo umoci docker-registry uidmap
  # coordinator high availability tests
  etcd-server etcd-client
  # protected files: FUSE and unmodified programs used on the shield
  fuse3 sqlite3 python3
  # baselines for benchmarks and sample apps
  openssl gzip pigz zstd gocryptfs openjdk-17-jdk-headless
  # launcher name-resolution tests
  dnsmasq-base
)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The Debian registry package starts a system service on :5000; Arca's tests start their own registries on
# free ports, so the system one is not needed (and must not hold the port on CI machines).
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  $SUDO systemctl stop docker-registry || true
fi

# podman on these machines needs explicit ulimits (see docs/testing.md).
mkdir -p "${XDG_CONFIG_HOME:-$HOME/.config}/arca"
cat > "${XDG_CONFIG_HOME:-$HOME/.config}/arca/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
CONF
echo "setup: done" >&2
