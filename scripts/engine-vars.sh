# Sourced by engine.sh, engine-current.sh, engine-env.sh and test.sh: where the two engines live.
# Every path can be moved with the variable named beside it.
#
# default: the distribution's engine (Debian 12 docker.io 20.10, API 1.41), or whatever engine $DOCKER_HOST
#          names when it is set to something else than the current engine's socket.
# current: Docker from Debian's sid suite (28.5 when this was written, API 1.51), started with
#          DOCKER_MIN_API_VERSION=1.44 so that it refuses old clients as Docker 29 does, beside the default one.

LAZYLLM_DEFAULT_HOST=${LAZYLLM_DEFAULT_HOST:-unix:///var/run/docker.sock}

# The extracted packages, the apt state used to fetch them, and the DOCKER_CONFIG folder with the CLI plugins.
LAZYLLM_CURRENT_DIR=${LAZYLLM_CURRENT_DIR:-/opt/lazyllm/engine-current}
# Socket, pid file and exec-root (its own containerd runs under it).
LAZYLLM_CURRENT_RUN=${LAZYLLM_CURRENT_RUN:-/run/lazyllm-current}
# Images, containers, volumes, build cache.
LAZYLLM_CURRENT_DATA=${LAZYLLM_CURRENT_DATA:-/var/lib/lazyllm-current}
LAZYLLM_CURRENT_LOG=${LAZYLLM_CURRENT_LOG:-/var/log/lazyllm-dockerd-current.log}
# Its own bridge: never '--bridge none' (that deletes docker0 under the default engine's containers).
LAZYLLM_CURRENT_BRIDGE=${LAZYLLM_CURRENT_BRIDGE:-lzbr0}
LAZYLLM_CURRENT_ADDR=${LAZYLLM_CURRENT_ADDR:-172.31.250.1/24}
# The address pool its user-defined networks come from: apart from the default engine's pools (172.17-31/16,
# 192.168/16), so that two engines creating networks at once never pick the same subnet.
LAZYLLM_CURRENT_POOL=${LAZYLLM_CURRENT_POOL:-10.250.0.0/16}
LAZYLLM_CURRENT_POOL_SIZE=${LAZYLLM_CURRENT_POOL_SIZE:-24}
# The oldest API it accepts (Docker 29.0 refuses anything below 1.44).
LAZYLLM_CURRENT_MIN_API=${LAZYLLM_CURRENT_MIN_API:-1.44}
LAZYLLM_CURRENT_SUITE=${LAZYLLM_CURRENT_SUITE:-sid}
LAZYLLM_CURRENT_PACKAGES=${LAZYLLM_CURRENT_PACKAGES:-docker.io containerd docker-buildx docker-compose}

LAZYLLM_CURRENT_SOCK=$LAZYLLM_CURRENT_RUN/docker.sock
LAZYLLM_CURRENT_HOST=unix://$LAZYLLM_CURRENT_SOCK
LAZYLLM_CURRENT_PIDFILE=$LAZYLLM_CURRENT_RUN/docker.pid
LAZYLLM_CURRENT_EXEC=$LAZYLLM_CURRENT_RUN/exec
LAZYLLM_CURRENT_ROOT=$LAZYLLM_CURRENT_DIR/root
LAZYLLM_CURRENT_CONFIG=$LAZYLLM_CURRENT_DIR/docker-config
