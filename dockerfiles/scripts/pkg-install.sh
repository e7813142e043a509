#!/bin/sh
# Install system packages with the base's package manager (apt on Debian/Ubuntu, dnf/yum on openEuler),
# keeping BuildKit's cache mounts (stock Debian images delete downloaded packages) and using the host's CA
# bundle for https mirrors when one was passed as a secret. No recommends.
set -e
if command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  rm -f /etc/apt/apt.conf.d/docker-clean
  echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' > /etc/apt/apt.conf.d/90lazyllm-keep-cache
  opts="-o APT::Install-Recommends=false -o Acquire::Retries=3"
  if [ -s /run/secrets/ca.crt ]; then opts="$opts -o Acquire::https::CaInfo=/run/secrets/ca.crt"; fi
  # shellcheck disable=SC2086
  apt-get $opts update -qq
  # shellcheck disable=SC2086
  apt-get $opts install -y -qq "$@"
elif command -v dnf >/dev/null 2>&1; then
  dnf install -y --setopt=install_weak_deps=False "$@"
elif command -v yum >/dev/null 2>&1; then
  yum install -y "$@"
else
  echo "pkg-install: no apt-get, dnf or yum in this base" >&2
  exit 1
fi
