# lazyllm layer: python (apt Python 3.10 in /opt/venv; uv 0.13.9, which installs every layer above, in /opt/lazyllm/uv)
FROM nvidia/cuda:13.0.1-cudnn-devel-ubuntu22.04
RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    --mount=type=secret,id=pipconf,target=/run/secrets/pip.conf \
    --mount=type=bind,source=.,target=/opt/lazyllm-build \
    --mount=type=cache,id=lazyllm-apt-ubuntu-22.04,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,id=lazyllm-aptlists-ubuntu-22.04,target=/var/lib/apt/lists,sharing=locked \
    sh /opt/lazyllm-build/with-host-config.sh sh /opt/lazyllm-build/pkg-install.sh python3 python3-venv ca-certificates

RUN (id -u 10001 >/dev/null 2>&1 || useradd --uid 10001 --create-home --shell /bin/sh lazyllm) \
 && mkdir -p /var/lib/lazyllm && chown 10001:10001 /var/lib/lazyllm
RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    --mount=type=secret,id=pipconf,target=/run/secrets/pip.conf \
    --mount=type=bind,source=.,target=/opt/lazyllm-build \
    --mount=type=cache,id=lazyllm-pip,target=/root/.cache/pip \
    python3 -m venv /opt/venv \
 && sh /opt/lazyllm-build/with-host-config.sh /opt/venv/bin/pip install "pip==26.3" \
 && python3 -m venv /opt/lazyllm/uv \
 && sh /opt/lazyllm-build/with-host-config.sh /opt/lazyllm/uv/bin/pip install "uv==0.13.9"
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN mkdir -p /opt/lazyllm/freeze && touch /opt/lazyllm/constraints.txt
ENV PIP_CONSTRAINT=/opt/lazyllm/constraints.txt
RUN pip freeze --all > /opt/lazyllm/freeze/python.txt
LABEL org.lazyllm.accelerator="nvidia" \
      org.lazyllm.constraints="" \
      org.lazyllm.cuda="13.0" \
      org.lazyllm.groups="" \
      org.lazyllm.kind="layer" \
      org.lazyllm.layer="python" \
      org.lazyllm.managed="true" \
      org.lazyllm.protect="" \
      org.lazyllm.python="3.10" \
      org.lazyllm.role="python" \
      org.lazyllm.smoke.python="{\"commands\":[[\"python\",\"-c\",\"import sys, venv; assert sys.prefix == '/opt/venv'\"]]}" \
      org.opencontainers.image.base.name="nvidia/cuda:13.0.1-cudnn-devel-ubuntu22.04" \
      org.opencontainers.image.description="A Python virtual environment at /opt/venv (the base's own Python, or one installed by uv when another version is asked for), pip and the build helpers." \
      org.opencontainers.image.title="lazyllm python" \
      org.opencontainers.image.vendor="lazyllm-images"
