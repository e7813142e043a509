#!/bin/sh
# Run one build step with the host's configuration. It reaches the build only as BuildKit secrets and a
# bind-mounted context (never as image content): the CA bundle of a TLS-intercepting proxy, pip's index
# settings and credentials (for pip and for uv), the host's local wheelhouse.
set -e
ca=/run/secrets/ca.crt
if [ -s "$ca" ]; then
  export PIP_CERT="$ca" SSL_CERT_FILE="$ca" REQUESTS_CA_BUNDLE="$ca" CURL_CA_BUNDLE="$ca" NODE_EXTRA_CA_CERTS="$ca" \
         GIT_SSL_CAINFO="$ca"
fi
if [ -s /run/secrets/pip.conf ]; then
  export PIP_CONFIG_FILE=/run/secrets/pip.conf
fi
# the same indexes, credentials and trusted hosts written for uv (uv reads no pip.conf); the venv sits on another
# filesystem than uv's cache mount, so uv copies (hard links would fail and warn)
if [ -s /run/secrets/uv.toml ]; then
  export UV_CONFIG_FILE=/run/secrets/uv.toml
fi
export UV_LINK_MODE=copy UV_NO_PROGRESS=1
if [ -d /opt/lazyllm-build/wheels ] && [ -n "$(ls /opt/lazyllm-build/wheels 2>/dev/null)" ]; then
  export PIP_FIND_LINKS="/opt/lazyllm-build/wheels${PIP_FIND_LINKS:+ $PIP_FIND_LINKS}" \
         UV_FIND_LINKS="/opt/lazyllm-build/wheels"
fi
exec "$@"
