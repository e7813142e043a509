# lazyllm layer: runtime (the project's own code: MCP bridge, chat page, RAG, model-server launchers)
FROM lazyllm/group-finetune:2449e80e5d9bfc91
COPY constraints.txt /opt/lazyllm/constraints.txt
RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    --mount=type=secret,id=pipconf,target=/run/secrets/pip.conf \
    --mount=type=secret,id=uvconf,target=/run/secrets/uv.toml \
    --mount=type=cache,id=lazyllm-uv,target=/root/.cache/uv \
    --mount=type=bind,source=.,target=/opt/lazyllm-build \
    sh /opt/lazyllm-build/with-host-config.sh /opt/lazyllm/uv/bin/uv pip install --python /opt/venv/bin/python --compile-bytecode \
      -c /opt/lazyllm/constraints.txt -r /opt/lazyllm-build/requirements.txt
COPY app/ /opt/lazyllm/app/
# compiled now: the servers run as uid 10001, who cannot write __pycache__ here, so each start would compile again
RUN python -m compileall -q -j 0 /opt/lazyllm/app
ENV PYTHONPATH=/opt/lazyllm/app
# the hub cache's mount point, owned by the servers' user: the engine copies that ownership into a new volume
RUN mkdir -p /cache/huggingface /cache/modelscope && chown -R 10001:10001 /cache
RUN pip freeze --all > /opt/lazyllm/freeze/runtime.txt
LABEL org.lazyllm.accelerator="nvidia" \
      org.lazyllm.constraints="torch==2.13.0+cu130;flash-attn==2.8.3" \
      org.lazyllm.cuda="13.0" \
      org.lazyllm.groups="finetune" \
      org.lazyllm.kind="layer" \
      org.lazyllm.layer="runtime" \
      org.lazyllm.managed="true" \
      org.lazyllm.protect="torch,torchvision,torchaudio,flash-attn" \
      org.lazyllm.python="3.10" \
      org.lazyllm.role="runtime" \
      org.lazyllm.smoke.runtime="{\"imports\":[\"lazyllm_images.runtime\"]}" \
      org.opencontainers.image.base.name="nvidia/cuda:13.0.1-cudnn-devel-ubuntu22.04" \
      org.opencontainers.image.description="The project's runtime (MCP bridge, chat page, RAG and model-server launchers) and its dependencies. Always the top layer, so changing it rebuilds only this layer." \
      org.opencontainers.image.title="lazyllm runtime" \
      org.opencontainers.image.vendor="lazyllm-images"
