#!/usr/bin/env bash
# Makes sure Debian's `chromium` is installed: the dashboard's browser test runs it headless against a real cluster.
# Idempotent: a chromium already on the PATH is left as it is. Installing needs root; without it this only says what
# is missing (the test then reports itself skipped). Logs to stderr; exits non-zero with the reason on failure.
set -euo pipefail

log() { printf 'ensure-chromium: %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

if command -v chromium >/dev/null 2>&1; then
  log "chromium is installed: $(command -v chromium)"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || fail "chromium is not installed and this is not root: install Debian's 'chromium' or run as root"
log "installing Debian package 'chromium' (apt-get update, then install)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || fail "apt-get update failed"
apt-get install -y -qq chromium >&2 || fail "apt-get install chromium failed"
command -v chromium >/dev/null 2>&1 || fail "the 'chromium' package installed no chromium on the PATH"
log "chromium is installed: $(command -v chromium)"
