#!/usr/bin/env bash
# `make test`: the suite on each engine named in $ENGINES (default: "current default"), one after the other.
# The first engine runs the whole suite (unit, host, engine, e2e, and the Swarm tests once); the others the paths
# that touch an engine (engine, e2e): unit and host tests do not depend on it. Each engine is started (scripts/engine.sh), gets the
# offline base (each engine has its own image store), then pytest runs with DOCKER_HOST/DOCKER_CONFIG
# pointing at it (scripts/engine-env.sh). Every engine runs even when an earlier one failed; the exit status
# is non-zero when any failed. Arguments go to pytest (make test PYTEST_ARGS=...); a -m among them wins.
#   make test ENGINES=current      # one engine only, the whole suite
set -uo pipefail
cd "$(dirname "$0")/.."

ENGINES=${ENGINES:-current default}
BIN=${VENV:-.venv}/bin
ALL="unit or host or engine or e2e"
# The multi-node Swarm tests (e2e and swarm: three extra engines of their own) run once, with the first engine.
ENGINE_PATHS="(engine or e2e) and not swarm"

for e in $ENGINES; do
  case $e in current|default) ;; *) echo "error: unknown engine '$e' in ENGINES (current, default)" >&2; exit 2;; esac
done

# run ENGINE MARKERS PYTEST-ARGS...: prints its one-line result last, returns non-zero on failure.
run() {
  local e=$1 markers=$2 rc; shift 2
  printf '\n\033[1m== tests on the %s engine: -m "%s"\033[0m\n' "$e" "$markers"
  if ! scripts/engine.sh "$e"; then
    RESULT="engine did not start"; return 1
  fi
  eval "$(scripts/engine-env.sh "$e")"
  echo "DOCKER_HOST=$DOCKER_HOST DOCKER_CONFIG=${DOCKER_CONFIG:-}"
  if ! "$BIN/lazyllm" images bootstrap; then
    RESULT="base bootstrap failed"; return 1
  fi
  "$BIN/python" -m pytest -m "$markers" "$@"
  rc=$?
  # BuildKit's cache (pip's cache mounts, intermediate snapshots) grows to tens of GB per engine over a run; the
  # images stay (content-tagged: a later run reuses them), the cache goes, so two engines fit a CI machine's disk.
  { docker builder prune -af || /usr/bin/docker builder prune -af; } >/dev/null 2>&1 || true
  case $rc in
    0) RESULT="passed" ;;
    5) if [ "$markers" = "$ENGINE_PATHS" ]; then RESULT="passed (no engine or e2e tests selected)"; rc=0
       else RESULT="failed (pytest found no tests)"; fi ;;
    *) RESULT="failed (pytest exit status $rc)" ;;
  esac
  return $rc
}

summary=() failed=0 first=1
for e in $ENGINES; do
  if [ $first = 1 ]; then markers=$ALL; else markers=$ENGINE_PATHS; fi
  first=0
  RESULT=""
  # A subshell: each engine's DOCKER_HOST/DOCKER_CONFIG stay with its own run.
  out=$(mktemp)
  ( run "$e" "$markers" "$@"; rc=$?; echo "$RESULT" >"$out"; exit $rc )
  rc=$?
  [ $rc = 0 ] || failed=1
  summary+=("$(printf '%-8s %-34s %s' "$e" "(-m \"$markers\")" "$(cat "$out")")")
  rm -f "$out"
done

printf '\n\033[1m== make test: one line per engine\033[0m\n'
printf '%s\n' "${summary[@]}"
exit $failed
