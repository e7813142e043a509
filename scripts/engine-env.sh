#!/usr/bin/env bash
# Print the shell lines that point docker, docker-py and lazyllm at one of the two engines:
#   eval "$(scripts/engine-env.sh current)"; make demo
#   eval "$(scripts/engine-env.sh default)"      # back to the default engine
# current: DOCKER_HOST is its socket, DOCKER_CONFIG the folder whose cli-plugins/ holds its buildx and compose v2.
# default: $DOCKER_HOST when it names another engine than the current one, else the distribution's socket;
#          DOCKER_CONFIG is unset when it is the current engine's. It starts nothing: scripts/engine.sh does.
set -euo pipefail
# shellcheck source=engine-vars.sh
. "$(dirname "$0")/engine-vars.sh"

line() { printf 'export %s=%q\n' "$1" "$2"; }

case "${1:-}" in
  current)
    line DOCKER_HOST "$LAZYLLM_CURRENT_HOST"
    line DOCKER_CONFIG "$LAZYLLM_CURRENT_CONFIG"
    line LAZYLLM_ENGINE current
    ;;
  default)
    host=${DOCKER_HOST:-}
    [ -n "$host" ] && [ "$host" != "$LAZYLLM_CURRENT_HOST" ] || host=$LAZYLLM_DEFAULT_HOST
    line DOCKER_HOST "$host"
    [ "${DOCKER_CONFIG:-}" != "$LAZYLLM_CURRENT_CONFIG" ] || echo 'unset DOCKER_CONFIG'
    line LAZYLLM_ENGINE default
    ;;
  *)
    printf 'usage: eval "$(%s current|default)"\n' "$0" >&2
    exit 2
    ;;
esac
