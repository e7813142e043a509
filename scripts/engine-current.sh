#!/usr/bin/env bash
# `scripts/engine.sh current`: leave a current Docker engine (Debian sid's docker.io, buildx and compose v2)
# answering on its own socket, beside the default engine and without touching it or the system's apt state.
# Idempotent: an engine already answering on that socket is left alone; what is missing is fetched or made.
# Paths: scripts/engine-vars.sh. Use it from a shell with: eval "$(scripts/engine-env.sh current)"
set -euo pipefail
# shellcheck source=engine-vars.sh
. "$(dirname "$0")/engine-vars.sh"

WAIT=${LAZYLLM_ENGINE_WAIT:-60}
DIR=$LAZYLLM_CURRENT_DIR ROOT=$LAZYLLM_CURRENT_ROOT SOCK=$LAZYLLM_CURRENT_SOCK HOST=$LAZYLLM_CURRENT_HOST
EXEC=$LAZYLLM_CURRENT_EXEC PIDFILE=$LAZYLLM_CURRENT_PIDFILE LOG=$LAZYLLM_CURRENT_LOG
BR=$LAZYLLM_CURRENT_BRIDGE ADDR=$LAZYLLM_CURRENT_ADDR

say() { printf 'engine (current): %s\n' "$*"; }
die() { printf 'error: %s\n' "$1" >&2; [ -n "${2:-}" ] && printf 'hint: %s\n' "$2" >&2; exit 1; }

# The CLI on PATH talks to it (the sid docker.io has no CLI); it must speak API >= the engine's minimum.
CLI=$(command -v docker || true)
[ -n "$CLI" ] || die "no docker CLI on PATH" "install a docker CLI of version 25 or newer (API >= $LAZYLLM_CURRENT_MIN_API)"
api=$("$CLI" -H unix:///nonexistent version --format '{{.Client.APIVersion}}' 2>/dev/null || true)
if [ -z "$api" ] || [ "$(printf '%s\n' "$api" "$LAZYLLM_CURRENT_MIN_API" | sort -V | head -n1)" != "$LAZYLLM_CURRENT_MIN_API" ]; then
  die "the docker CLI on PATH ($CLI, API ${api:-unknown}) is older than the current engine accepts ($LAZYLLM_CURRENT_MIN_API)" \
      "put a docker CLI of version 25 or newer first on PATH"
fi

answers() { timeout 10 "$CLI" -H "$HOST" version --format '{{.Server.Version}}' >/dev/null 2>&1; }
server() { "$CLI" -H "$HOST" version --format \
  '{{.Server.Version}} (API {{.Server.APIVersion}}, oldest accepted {{.Server.MinAPIVersion}})' 2>/dev/null; }

plugins_ok() { [ -x "$LAZYLLM_CURRENT_CONFIG/cli-plugins/docker-buildx" ] && \
               [ -x "$LAZYLLM_CURRENT_CONFIG/cli-plugins/docker-compose" ]; }
binaries_ok() { [ -x "$ROOT/usr/sbin/dockerd" ] && [ -x "$ROOT/usr/bin/containerd" ] && plugins_ok; }

report() {
  local v
  say "ready: Docker $(server) at $HOST (log: $LOG)"
  v=$(DOCKER_CONFIG=$LAZYLLM_CURRENT_CONFIG timeout 20 "$CLI" buildx version 2>/dev/null | head -n1 || true)
  say "BuildKit client: $CLI buildx (${v:-not working}) with DOCKER_CONFIG=$LAZYLLM_CURRENT_CONFIG"
  v=$(DOCKER_CONFIG=$LAZYLLM_CURRENT_CONFIG timeout 20 "$CLI" compose version 2>/dev/null | head -n1 || true)
  say "compose: $CLI compose (${v:-not working})"
  if cpid=$(pid_of "$EXEC/containerd/containerd.pid" "$EXEC/containerd"); then
    say "its containerd: pid $cpid ($(readlink "/proc/$cpid/exe"), state under $EXEC/containerd)"
  elif [ -S /run/containerd/containerd.sock ]; then
    # dockerd uses a system containerd when one answers there; its own namespace keeps the engines apart
    say "its containerd: the system's (/run/containerd/containerd.sock), namespace lazyllm-current"
  fi
  say "use it: eval \"\$(scripts/engine-env.sh current)\""
}

# Where the system's own packages come from (deb822 or one-line sources); deb.debian.org otherwise.
debian_mirror() {
  local m=""
  if [ -n "${LAZYLLM_DEBIAN_MIRROR:-}" ]; then echo "$LAZYLLM_DEBIAN_MIRROR"; return; fi
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' \
      | grep -v -e security -e '^cdrom' | grep -m1 'debian' || true)
  [ -n "$m" ] || m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' \
      | grep -v security | grep -m1 'debian' || true)
  echo "${m:-http://deb.debian.org/debian}"
}

# The packages from the sid suite, with an apt state of our own: the system's sources, lists, cache and
# preferences are neither read nor written (only dpkg's status is read).
fetch() {
  local apt=$DIR/apt mirror deb
  mirror=$(debian_mirror)
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/empty.d"
  printf 'deb %s %s main\n' "$mirror" "$LAZYLLM_CURRENT_SUITE" >"$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Dir::Cache::pkgcache=
              -o Dir::Cache::srcpkgcache= -o "Dir::Etc::Preferences=$apt/empty.d/none"
              -o "Dir::Etc::PreferencesParts=$apt/empty.d" -o APT::Sandbox::User=root)
  say "fetching $LAZYLLM_CURRENT_PACKAGES from $mirror $LAZYLLM_CURRENT_SUITE (apt state in $apt)"
  apt-get -qq "${opts[@]}" update >/dev/null
  rm -rf "$DIR/debs" "$DIR/root.new"
  mkdir -p "$DIR/debs" "$DIR/root.new"
  # shellcheck disable=SC2086
  (cd "$DIR/debs" && apt-get -qq "${opts[@]}" download $LAZYLLM_CURRENT_PACKAGES >/dev/null)
  for deb in "$DIR"/debs/*.deb; do
    dpkg -x "$deb" "$DIR/root.new"
    say "  $(basename "$deb")"
  done
  rm -rf "$ROOT"
  mv "$DIR/root.new" "$ROOT"
  (cd "$DIR/debs" && ls -1 -- *.deb) >"$DIR/packages.txt"
  rm -rf "$DIR/debs"
}

# The CLI finds plugins in $DOCKER_CONFIG/cli-plugins; hard links (copies across file systems).
install_plugins() {
  local p
  mkdir -p "$LAZYLLM_CURRENT_CONFIG/cli-plugins"
  for p in docker-buildx docker-compose; do
    ln -f "$ROOT/usr/libexec/docker/cli-plugins/$p" "$LAZYLLM_CURRENT_CONFIG/cli-plugins/$p" 2>/dev/null ||
      cp -f "$ROOT/usr/libexec/docker/cli-plugins/$p" "$LAZYLLM_CURRENT_CONFIG/cli-plugins/$p"
  done
  [ -f "$LAZYLLM_CURRENT_CONFIG/config.json" ] || echo '{}' >"$LAZYLLM_CURRENT_CONFIG/config.json"
}

# a.b.c.d/n -> its network, a.b.c.0/n
subnet_of() {
  local ip=${1%/*} n=${1#*/} a b c d x mask
  IFS=. read -r a b c d <<<"$ip"
  x=$(( (a << 24) | (b << 16) | (c << 8) | d ))
  mask=$(( n == 0 ? 0 : (0xffffffff << (32 - n)) & 0xffffffff ))
  x=$(( x & mask ))
  echo "$(( x >> 24 & 255 )).$(( x >> 16 & 255 )).$(( x >> 8 & 255 )).$(( x & 255 ))/$n"
}

# rule TABLE CHAIN ADD-FLAG SPEC...: add the rule unless it is there (-C), with -A or -I.
rule() {
  local table=$1 chain=$2 how=$3; shift 3
  iptables -w -t "$table" -C "$chain" "$@" 2>/dev/null && return 0
  iptables -w -t "$table" "$how" "$chain" "$@"
  say "iptables -t $table $how $chain $*"
}

# Its own bridge, and what --iptables=false leaves out: NAT to the outside and forwarding both ways, for the
# default bridge and for the networks it creates from its pool (bridges named br-*, like the default engine's).
ensure_network() {
  local net pool=$LAZYLLM_CURRENT_POOL
  if ! ip link show dev "$BR" >/dev/null 2>&1; then
    ip link add "$BR" type bridge
    say "made bridge $BR"
  fi
  if ! ip -4 -o addr show dev "$BR" | grep -q "inet $ADDR "; then
    ip addr add "$ADDR" dev "$BR"
    say "gave $BR the address $ADDR"
  fi
  ip link set "$BR" up
  if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
    echo 1 >/proc/sys/net/ipv4/ip_forward
    say "turned on net.ipv4.ip_forward"
  fi
  net=$(subnet_of "$ADDR")
  rule nat POSTROUTING -A -s "$net" ! -o "$BR" -j MASQUERADE
  rule filter FORWARD -A -i "$BR" -j ACCEPT
  rule filter FORWARD -A -o "$BR" -j ACCEPT
  rule nat POSTROUTING -A -s "$pool" ! -d "$pool" -j MASQUERADE
  rule filter FORWARD -A -s "$pool" -j ACCEPT
  rule filter FORWARD -A -d "$pool" -j ACCEPT
  # DOCKER-USER (the default engine's) ends in RETURN: insert ahead of it.
  if iptables -w -L DOCKER-USER -n >/dev/null 2>&1; then
    rule filter DOCKER-USER -I -i "$BR" -j ACCEPT
    rule filter DOCKER-USER -I -o "$BR" -j ACCEPT
    rule filter DOCKER-USER -I -s "$pool" -j ACCEPT
    rule filter DOCKER-USER -I -d "$pool" -j ACCEPT
  fi
}

# pid in FILE when it is a live process whose command line holds WORD (a pid reused by another process is not it).
pid_of() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  ps -o stat= -p "$pid" 2>/dev/null | grep -qv '^Z' || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
  echo "$pid"
}

if answers; then
  say "already answering at $HOST"
  if [ "$(id -u)" = 0 ]; then
    binaries_ok || fetch
    plugins_ok || install_plugins
    ensure_network
  fi
  report
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  die "no engine answers at $HOST and this is not root" "run 'sudo scripts/engine.sh current' (it runs as root)"
fi
if ! grep -qiE '^(ID|ID_LIKE)=.*debian' /etc/os-release 2>/dev/null; then
  die "the current engine is fetched from Debian's $LAZYLLM_CURRENT_SUITE suite and this is not Debian" \
      "point DOCKER_HOST at a Docker 25+ engine with buildx and compose v2 instead"
fi

# runc and docker-init come from the distribution's docker.io (the default engine), iptables and ip too.
need=()
{ command -v runc >/dev/null 2>&1 && command -v docker-init >/dev/null 2>&1; } || need+=(docker.io)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} from the distribution (runc, docker-init, iptables, ip)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

binaries_ok || fetch
plugins_ok || install_plugins
ensure_network
mkdir -p "$LAZYLLM_CURRENT_RUN" "$LAZYLLM_CURRENT_DATA" "$(dirname "$LOG")"
# Its own configuration file (not /etc/docker/daemon.json, which is the default engine's), rewritten at each start.
# live-restore: a dockerd started with default-address-pools and without it deletes the interface named docker0
# at start-up (moby's configureNetworking: "Clear stale bridge network" -> removeDefaultBridgeInterface), which is
# the default engine's bridge: every container there then fails with "could not find bridge docker0".
printf '{"default-address-pools": [{"base": "%s", "size": %s}], "live-restore": true}\n' \
  "$LAZYLLM_CURRENT_POOL" "$LAZYLLM_CURRENT_POOL_SIZE" >"$DIR/daemon.json"

# After an unclean death: a pid file whose pid is gone, or now belongs to another process, goes; so does
# the containerd pid file unless it names our containerd (dockerd would otherwise take that pid for its own).
if pid=$(pid_of "$PIDFILE" "--pidfile $PIDFILE"); then
  say "dockerd (pid $pid) runs but does not answer yet; waiting for it"
else
  if [ -e "$PIDFILE" ]; then say "removing stale $PIDFILE"; rm -f "$PIDFILE"; fi
  if [ -e "$EXEC/containerd/containerd.pid" ] && ! pid_of "$EXEC/containerd/containerd.pid" "$EXEC/containerd" >/dev/null; then
    say "removing stale $EXEC/containerd/containerd.pid"
    rm -f "$EXEC/containerd/containerd.pid"
  fi
  say "starting dockerd $("$ROOT/usr/sbin/dockerd" --version | sed 's/^Docker version //') (log: $LOG)"
  # PATH: its own containerd and shim first; runc and docker-init are the distribution's.
  DOCKER_MIN_API_VERSION=$LAZYLLM_CURRENT_MIN_API PATH="$ROOT/usr/bin:$ROOT/usr/sbin:$PATH" \
    setsid nohup "$ROOT/usr/sbin/dockerd" \
      --config-file "$DIR/daemon.json" \
      --data-root "$LAZYLLM_CURRENT_DATA" --exec-root "$EXEC" --pidfile "$PIDFILE" -H "$HOST" \
      -b "$BR" --iptables=false --ip6tables=false \
      --containerd-namespace lazyllm-current --containerd-plugins-namespace lazyllm-current-plugins \
      --userland-proxy-path "$ROOT/usr/sbin/docker-proxy" \
      >>"$LOG" 2>&1 </dev/null &
fi

for _ in $(seq 1 "$WAIT"); do
  if answers; then
    report
    exit 0
  fi
  sleep 1
done
printf 'error: the current engine did not answer within %ss; last lines of %s:\n' "$WAIT" "$LOG" >&2
tail -n 30 "$LOG" >&2 || true
printf 'hint: fix what the log says, then run scripts/engine.sh current again\n' >&2
exit 1
