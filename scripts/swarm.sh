#!/usr/bin/env bash
# A real 3-node Docker Swarm on this machine, for the Swarm target's tests (reference/scale-out.md §1,
# ENVIRONMENT.md "Several engines as a Swarm"). Never touches the default engine (/var/run/docker.sock, docker0)
# nor the current one (scripts/engine.sh current, lzbr0, 10.250/16).
#
#   scripts/swarm.sh up     start (idempotent): a test bridge, 3 network namespaces each with its own dockerd
#                           (Debian's 20.10: own data/exec roots, key, hostname), node 1 the manager, nodes 2 and 3
#                           workers advertising one fake GPU each (NVIDIA-GPU=GPU-fake0 / GPU-fake1), and a
#                           docker-registry on the bridge that every node and this host reach as 127.0.0.1:PORT
#   scripts/swarm.sh env    shell lines for the manager: eval "$(scripts/swarm.sh env)"
#   scripts/swarm.sh down   stop and remove everything up made (processes, namespaces, bridge, rules, data)
#   scripts/swarm.sh kill N worker N lost (dockerd, containers killed, link cut), for rescheduling tests; `up`
#                           replaces it with a fresh node
#
# Images: push to $LAZYLLM_SWARM_REGISTRY (127.0.0.1:PORT) from the default engine (loopback registries need no TLS);
# inside each node a forwarder makes the same 127.0.0.1:PORT reach the registry on the bridge.
set -euo pipefail

BR=${LAZYLLM_SWARM_BRIDGE:-lzsw0}
NET=${LAZYLLM_SWARM_NET:-10.251.0}           # /24: .1 the bridge (this host), .11-.13 the nodes
POOL=${LAZYLLM_SWARM_POOL:-10.252.0.0/16}    # the Swarm's overlay subnets
PORT=${LAZYLLM_SWARM_REGISTRY_PORT:-5251}
RUN=${LAZYLLM_SWARM_RUN:-/run/lazyllm-swarm}
DATA=${LAZYLLM_SWARM_DATA:-/var/lib/lazyllm-swarm}
DOCKERD=${LAZYLLM_SWARM_DOCKERD:-/usr/sbin/dockerd}       # the workers' engine: Debian 12's 20.10
# The manager's engine: 20.10's scheduler cannot place a task that asks for a generic resource (a GPU) and joins an
# overlay network ("assigned node no longer meets constraints", moby#44378, fixed by moby#45106 in 23.0); so node 1
# runs the current engine's dockerd (scripts/engine.sh current fetched it) when it is there, else 20.10 as well.
CURRENT_ROOT=${LAZYLLM_CURRENT_DIR:-/opt/lazyllm/engine-current}/root
MANAGER_DOCKERD=${LAZYLLM_SWARM_MANAGER_DOCKERD:-$CURRENT_ROOT/usr/sbin/dockerd}
[ -x "$MANAGER_DOCKERD" ] || MANAGER_DOCKERD=$DOCKERD
NODES=3
WAIT=${LAZYLLM_SWARM_WAIT:-90}           # seconds; a revived node first restores its old containers
GPUS=("" "NVIDIA-GPU=GPU-fake0" "NVIDIA-GPU=GPU-fake1")   # per node, 1-based below

say() { printf 'swarm: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$1" >&2; [ -n "${2:-}" ] && printf 'hint: %s\n' "$2" >&2; exit 1; }

cli() { for c in /usr/local/bin/docker /usr/bin/docker "$(command -v docker || true)"; do
          [ -x "$c" ] && { echo "$c"; return; }; done; die "no docker CLI" "apt-get install docker.io"; }
DOCKER=$(cli)
ns() { echo "lzsw$1"; }
sock() { echo "unix://$RUN/node$1/docker.sock"; }
node() { local n=$1; shift; "$DOCKER" -H "$(sock "$n")" "$@"; }
answers() { timeout 5 "$DOCKER" -H "$(sock "$1")" version --format '{{.Server.Version}}' >/dev/null 2>&1; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# The TCP forwarder (python3, standard library): 127.0.0.1:PORT -> the registry on the bridge.
FORWARD='
import socket, sys, threading
lh, lp, th, tp = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s, how in ((b, socket.SHUT_WR), (a, socket.SHUT_RD)):
        try:
            s.shutdown(how)
        except OSError:
            pass
srv = socket.create_server((lh, lp), reuse_port=False)
while True:
    c, _ = srv.accept()
    try:
        u = socket.create_connection((th, tp), timeout=10)
        u.settimeout(None)
    except OSError:
        c.close()
        continue
    for x, y in ((c, u), (u, c)):
        threading.Thread(target=pipe, args=(x, y), daemon=True).start()
'

net_up() {
  if ! ip link show "$BR" >/dev/null 2>&1; then
    ip link add "$BR" type bridge
    ip addr add "$NET.1/24" dev "$BR"
  fi
  ip link set "$BR" up
  # node-to-node and host-to-node traffic crosses the host's FORWARD chain (policy DROP under the default engine)
  for chain in FORWARD DOCKER-USER; do
    iptables -nL "$chain" >/dev/null 2>&1 || continue
    iptables -C "$chain" -i "$BR" -o "$BR" -j ACCEPT 2>/dev/null || iptables -I "$chain" -i "$BR" -o "$BR" -j ACCEPT
  done
  local n
  for n in $(seq 1 $NODES); do
    [ -e "/run/netns/$(ns "$n")" ] || ip netns add "$(ns "$n")"
    if ! ip link show "$(ns "$n")h" >/dev/null 2>&1; then
      ip link add "$(ns "$n")h" type veth peer name eth0 netns "$(ns "$n")"
      ip link set "$(ns "$n")h" master "$BR"
      ip -n "$(ns "$n")" addr add "$NET.1$n/24" dev eth0
    fi
    ip link set "$(ns "$n")h" up           # `kill N` cut it
    ip -n "$(ns "$n")" link set lo up
    ip -n "$(ns "$n")" link set eth0 up
    ip -n "$(ns "$n")" route replace default via "$NET.1"
  done
}

registry_up() {
  mkdir -p "$DATA/registry" "$RUN"
  if ! alive "$RUN/registry.pid"; then
    command -v docker-registry >/dev/null || { apt-get install -y -qq docker-registry >/dev/null || \
      die "no docker-registry" "apt-get install docker-registry"; }
    cat >"$RUN/registry.yml" <<EOF
version: 0.1
storage: {filesystem: {rootdirectory: $DATA/registry}, delete: {enabled: true}}
http: {addr: "$NET.1:$PORT"}
EOF
    setsid nohup docker-registry serve "$RUN/registry.yml" >>"$RUN/registry.log" 2>&1 </dev/null &
    echo $! >"$RUN/registry.pid"
  fi
  # this host's 127.0.0.1:PORT (the default engine pushes there without TLS) and each node's
  if ! alive "$RUN/forward0.pid"; then
    setsid nohup python3 -c "$FORWARD" 127.0.0.1 "$PORT" "$NET.1" "$PORT" >>"$RUN/forward0.log" 2>&1 </dev/null &
    echo $! >"$RUN/forward0.pid"
  fi
  local n
  for n in $(seq 1 $NODES); do
    if ! alive "$RUN/forward$n.pid"; then
      setsid nohup nsenter --net="/run/netns/$(ns "$n")" python3 -c "$FORWARD" 127.0.0.1 "$PORT" "$NET.1" "$PORT" \
        >>"$RUN/forward$n.log" 2>&1 </dev/null &
      echo $! >"$RUN/forward$n.pid"
    fi
  done
}

node_up() {
  local n=$1 dir="$RUN/node$1" gpu=${GPUS[$(( $1 - 1 ))]} bin=$DOCKERD path=$PATH extra=""
  if [ "$n" = 1 ] && [ "$MANAGER_DOCKERD" != "$DOCKERD" ]; then
    bin=$MANAGER_DOCKERD
    path="$(dirname "$(dirname "$bin")")/bin:$(dirname "$bin"):$PATH"     # its own containerd and shim
    extra="--userland-proxy-path $(dirname "$bin")/docker-proxy"
  fi
  answers "$n" && return 0
  [ -f "$dir/lost" ] && wipe_node "$n"
  mkdir -p "$dir" "$DATA/node$n"
  if [ -f "$dir/docker.pid" ] && ! alive "$dir/docker.pid"; then rm -f "$dir/docker.pid"; fi
  alive "$dir/docker.pid" && return 0
  {
    printf '{"insecure-registries": ["%s.1:%s"]' "$NET" "$PORT"
    # 20.10 takes its engine ID from this key (one shared file: one ID for all); 23+ from its data root
    [ "$bin" != "$DOCKERD" ] || printf ', "deprecated-key-path": "%s/key.json"' "$DATA/node$n"
    [ -n "$gpu" ] && printf ', "node-generic-resources": ["%s"]' "$gpu"
    printf ', "labels": ["org.lazyllm.swarm-test=true"]}\n'
  } >"$dir/daemon.json"
  # nsenter, not `ip netns exec` ("Devices cgroup isn't mounted"); unshare --uts for a hostname of its own
  PATH=$path setsid nohup nsenter --net="/run/netns/$(ns "$n")" unshare --uts sh -c \
    "hostname lzsw-node$n && exec $bin $extra --config-file $dir/daemon.json --data-root $DATA/node$n \
     --exec-root $dir/exec --pidfile $dir/docker.pid -H $(sock "$n") \
     --containerd-namespace lzsw$n --containerd-plugins-namespace lzsw$n-plugins" \
    >>"$dir/dockerd.log" 2>&1 </dev/null &
}

wait_node() {
  local n=$1 i
  for i in $(seq 1 $((WAIT * 2))); do answers "$n" && return 0; sleep 0.5; done
  tail -n 20 "$RUN/node$n/dockerd.log" >&2 || true
  die "node $n did not answer within $WAIT s" "read $RUN/node$n/dockerd.log, then scripts/swarm.sh down; up"
}

swarm_up() {
  local state n token
  state=$(node 1 info --format '{{.Swarm.LocalNodeState}}')
  if [ "$state" != active ]; then
    node 1 swarm init --advertise-addr "$NET.11" --listen-addr "$NET.11:2377" --default-addr-pool "$POOL" \
      --dispatcher-heartbeat 1s >/dev/null
  fi
  token=$(node 1 swarm join-token -q worker)
  for n in $(seq 2 $NODES); do
    state=$(node "$n" info --format '{{.Swarm.LocalNodeState}}')
    [ "$state" = active ] || node "$n" swarm join --token "$token" --advertise-addr "$NET.1$n" "$NET.11:2377" >/dev/null
  done
  # a node replaced after `kill` leaves a Down ghost behind: drop those (and the tasks Swarm still lists there)
  for id in $(node 1 node ls --filter role=worker --format '{{.ID}} {{.Status}}' | awk '$2 == "Down" {print $1}'); do
    node 1 node rm --force "$id" >/dev/null 2>&1 || true
  done
}

up() {
  [ "$(id -u)" = 0 ] || die "a Swarm of network namespaces needs root" "run it as root"
  [ -x "$DOCKERD" ] || die "no $DOCKERD" "apt-get install docker.io"
  command -v python3 >/dev/null || die "no python3 for the registry forwarders" "apt-get install python3"
  net_up
  registry_up
  local n
  for n in $(seq 1 $NODES); do node_up "$n"; done
  for n in $(seq 1 $NODES); do wait_node "$n"; done
  swarm_up
  for _ in $(seq 1 40); do
    [ "$(node 1 node ls --format '{{.Status}}' | grep -c Ready)" -ge $NODES ] && break
    sleep 0.5
  done
  say "ready: $(node 1 node ls --format '{{.Hostname}}({{.Status}})' | tr '\n' ' ')"
  say "registry: 127.0.0.1:$PORT (this host and every node); manager: $(sock 1)"
}

env_() {
  printf 'export DOCKER_HOST=%s\n' "$(sock 1)"
  printf 'export LAZYLLM_SWARM_REGISTRY=127.0.0.1:%s\n' "$PORT"
  local n
  for n in $(seq 1 $NODES); do printf 'export LAZYLLM_SWARM_NODE%s=%s\n' "$n" "$(sock "$n")"; done
}

stop_pid() {
  local f=$1 pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# A node lost for good, as when its machine dies: its dockerd, containerd and containers killed (no goodbye to the
# manager), its link cut. `up` then starts a fresh node in its place (new data root, joined again) and removes the
# lost one from the Swarm, which drops the tasks it still lists there.
kill_node() {
  local n=${1:-} pid
  [[ "$n" =~ ^[1-9]$ ]] && [ "$n" -gt 1 ] && [ "$n" -le $NODES ] || die "which worker? 2..$NODES" "scripts/swarm.sh kill 3"
  ip link set "$(ns "$n")h" down 2>/dev/null || true
  [ -f "$RUN/node$n/docker.pid" ] && kill -9 "$(cat "$RUN/node$n/docker.pid")" 2>/dev/null || true
  for pid in $(ip netns pids "$(ns "$n")" 2>/dev/null); do
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in python3) ;; *) kill -9 "$pid" 2>/dev/null || true ;; esac
  done                                   # (the registry forwarder, python3, stays)
  kill_containers "$n"
  rm -f "$RUN/node$n/docker.pid"
  touch "$RUN/node$n/lost"
  say "node $n lost (dockerd, containerd and containers killed, link down); 'scripts/swarm.sh up' replaces it"
}

# What a lost node left on disk: unmounted and removed, so that it starts as a new node.
wipe_node() {
  local n=$1 m
  for m in $(awk -v a="$DATA/node$n" -v b="$RUN/node$n/exec" 'index($2, a) == 1 || index($2, b) == 1 {print $2}' \
             /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "${DATA:?}/node$n" "$RUN/node$n/exec" "$RUN/node$n/lost"
}

# Processes of a node's containers (their own network namespaces, so not in the node's): by container id.
kill_containers() {
  local n=$1 id pid
  for id in $(ls "$DATA/node$n/containers" 2>/dev/null); do
    for pid in $(grep -l "$id" /proc/[0-9]*/cgroup 2>/dev/null | cut -d/ -f3); do kill -9 "$pid" 2>/dev/null || true; done
  done
}

down() {
  local n m
  for n in $(seq 1 $NODES); do
    if answers "$n"; then
      # shellcheck disable=SC2046
      node "$n" rm -f $(node "$n" ps -aq) >/dev/null 2>&1 || true
    fi
    stop_pid "$RUN/node$n/docker.pid"     # its containerd (under the exec root) goes with it
    stop_pid "$RUN/forward$n.pid"
    kill_containers "$n"
  done
  # processes still in our namespaces (containerd shims, containers) go too: by namespace, never by name
  for n in $(seq 1 $NODES); do
    if [ -e "/run/netns/$(ns "$n")" ]; then
      for pid in $(ip netns pids "$(ns "$n")" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$(ns "$n")" 2>/dev/null || true
    fi
    ip link del "$(ns "$n")h" 2>/dev/null || true
  done
  stop_pid "$RUN/forward0.pid"
  stop_pid "$RUN/registry.pid"
  for chain in FORWARD DOCKER-USER; do
    while iptables -D "$chain" -i "$BR" -o "$BR" -j ACCEPT 2>/dev/null; do :; done
  done
  ip link del "$BR" 2>/dev/null || true
  # mounts left under the roots (overlay layers, netns files, secrets tmpfs) before removing them
  for m in $(awk -v a="$DATA" -v b="$RUN" 'index($2, a) == 1 || index($2, b) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$DATA" "$RUN"
  say "down: nothing of the test Swarm is left"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) env_ ;;
  kill) kill_node "${2:-}" ;;
  *) printf 'usage: %s up|down|env|kill N\n' "$0" >&2; exit 2 ;;
esac
