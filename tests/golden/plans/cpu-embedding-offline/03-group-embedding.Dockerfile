# lazyllm layer: group-embedding
FROM lazyllm/torch:d8f2d4d0b0e1737e

COPY constraints.txt /opt/lazyllm/constraints.txt

RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    --mount=type=secret,id=pipconf,target=/run/secrets/pip.conf \
    --mount=type=secret,id=uvconf,target=/run/secrets/uv.toml \
    --mount=type=cache,id=lazyllm-uv,target=/root/.cache/uv \
    --mount=type=bind,source=.,target=/opt/lazyllm-build \
    sh /opt/lazyllm-build/with-host-config.sh /opt/lazyllm/uv/bin/uv pip install --python /opt/venv/bin/python --compile-bytecode \
      -c /opt/lazyllm/constraints.txt -r /opt/lazyllm-build/requirements.txt
RUN pip freeze --all > /opt/lazyllm/freeze/group-embedding.txt
LABEL org.lazyllm.accelerator="cpu" \
      org.lazyllm.constraints="torch==2.13.0+cpu" \
      org.lazyllm.cuda="" \
      org.lazyllm.groups="embedding" \
      org.lazyllm.kind="layer" \
      org.lazyllm.layer="group-embedding" \
      org.lazyllm.managed="true" \
      org.lazyllm.protect="torch,torchvision,torchaudio" \
      org.lazyllm.python="3.11" \
      org.lazyllm.role="group" \
      org.lazyllm.smoke.group-embedding="{\"imports\":[\"sentence_transformers\"]}" \
      org.opencontainers.image.base.name="lazyllm/base-offline:debian-bookworm" \
      org.opencontainers.image.description="Embedding models on sentence-transformers (local CPU or GPU)." \
      org.opencontainers.image.title="lazyllm group-embedding" \
      org.opencontainers.image.vendor="lazyllm-images"
