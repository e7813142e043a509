#!/usr/bin/env bash
# Leave a Docker engine answering, and say which BuildKit-capable client builds will use.
# Idempotent: an engine that already answers is left alone. On Debian/Ubuntu as root it installs
# docker.io from the distribution and starts dockerd in the background (log: $LAZYLLM_DOCKERD_LOG).
# Usage: scripts/engine.sh [default|current]
#   default  the engine $DOCKER_HOST names, else the distribution's (this script, below)
#   current  a current Docker (Debian sid) beside it on its own socket: scripts/engine-current.sh
set -euo pipefail

case "${1:-default}" in
  default) ;;
  current) exec "$(dirname "$0")/engine-current.sh" ;;
  *) printf 'usage: %s [default|current]\n' "$0" >&2; exit 2 ;;
esac

# A shell set up for the current engine (eval "$(scripts/engine-env.sh current)") still means the default one here.
# shellcheck source=engine-vars.sh
. "$(dirname "$0")/engine-vars.sh"
[ "${DOCKER_HOST:-}" != "$LAZYLLM_CURRENT_HOST" ] || unset DOCKER_HOST
[ "${DOCKER_CONFIG:-}" != "$LAZYLLM_CURRENT_CONFIG" ] || unset DOCKER_CONFIG

LOG=${LAZYLLM_DOCKERD_LOG:-/var/log/lazyllm-dockerd.log}
WAIT=${LAZYLLM_ENGINE_WAIT:-60}

say() { printf 'engine: %s\n' "$*"; }
die() { printf 'error: %s\n' "$1" >&2; [ -n "${2:-}" ] && printf 'hint: %s\n' "$2" >&2; exit 1; }

# Any docker client can ask; prefer the one on PATH.
client() { command -v docker || ls /usr/bin/docker 2>/dev/null || true; }

answers() {
  local c; c=$(client); [ -n "$c" ] || return 1
  timeout 10 "$c" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

report_buildkit() {
  local c v
  for c in $(command -v docker 2>/dev/null) /usr/bin/docker /usr/local/bin/docker; do
    [ -x "$c" ] || continue
    if timeout 10 "$c" buildx version >/dev/null 2>&1; then
      say "BuildKit client: $c buildx ($("$c" buildx version | head -n1))"; return 0
    fi
  done
  for c in /usr/bin/docker /usr/local/bin/docker $(command -v docker 2>/dev/null); do
    [ -x "$c" ] || continue
    v=$("$c" version --format '{{.Client.Version}}' 2>/dev/null || true)
    case "$v" in 1[89].*|2[0-2].*)
      say "BuildKit client: $c $v (built-in BuildKit, DOCKER_BUILDKIT=1)"; return 0;;
    esac
  done
  say "warning: no BuildKit-capable client: install the buildx plugin (docker-buildx-plugin or docker-buildx)"
  return 0
}

if answers; then
  say "already answering: Docker $($(client) version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
  report_buildkit
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  die "no Docker engine answers and this is not root" \
      "start the engine yourself (e.g. 'sudo systemctl start docker'), or add yourself to the docker group"
fi
if ! grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release 2>/dev/null; then
  die "no Docker engine answers and this is not Debian/Ubuntu" \
      "install Docker Engine for your distribution (https://docs.docker.com/engine/install/) and start it"
fi

if ! command -v dockerd >/dev/null 2>&1 || [ ! -x /usr/bin/docker ]; then
  say "installing docker.io from the distribution"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq docker.io >/dev/null
fi

# A live (not zombie) process of that name, not the current engine's nor a test Swarm node's (their command lines
# name their own run folders: $LAZYLLM_CURRENT_RUN, /run/lazyllm-swarm).
alive() {
  ps -C "$1" -o stat=,args= 2>/dev/null |
    awk -v cur="$LAZYLLM_CURRENT_RUN" '$1 !~ /^Z/ && index($0, cur) == 0 && index($0, "/run/lazyllm-swarm") == 0 {n++}
      END {exit n == 0}'
}

# An engine that died uncleanly leaves pid files behind; remove them only when no such process runs.
if ! alive dockerd; then
  rm -f /var/run/docker.pid /run/docker.pid
  if ! alive containerd; then
    rm -f /var/run/docker/containerd/containerd.pid
  fi
  mkdir -p "$(dirname "$LOG")"
  say "starting dockerd (log: $LOG)"
  setsid nohup dockerd >>"$LOG" 2>&1 < /dev/null &
fi

for _ in $(seq 1 "$WAIT"); do
  if answers; then
    say "ready: Docker $($(client) version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
    report_buildkit
    exit 0
  fi
  sleep 1
done
printf 'error: the Docker engine did not answer within %ss; last lines of %s:\n' "$WAIT" "$LOG" >&2
tail -n 30 "$LOG" >&2 || true
printf 'hint: fix what the log says, then run make engine again\n' >&2
exit 1
