#!/usr/bin/env bash
# `make demo`: the main job end to end on the embedded default (offline Debian base, CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
L=.venv/bin/lazyllm
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "the host"
$L doctor

step "the offline base (debootstrap + import, reused when present)"
$L images bootstrap
docker run --rm lazyllm/base-offline:debian-bookworm cat /etc/os-release | head -n 2
