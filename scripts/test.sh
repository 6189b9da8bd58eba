#!/usr/bin/env bash
# Runs Arca's whole test suite. Tests start the services they use themselves (registries, etcd, FUSE mounts)
# on free ports and temporary directories; strict mode makes a missing tool a failure rather than a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
export ARCA_TEST_STRICT=1
export CONTAINERS_CONF="${CONTAINERS_CONF:-${XDG_CONFIG_HOME:-$HOME/.config}/arca/containers.conf}"
cargo test --workspace --all-targets --no-fail-fast "$@"
cargo test --workspace --doc --no-fail-fast
