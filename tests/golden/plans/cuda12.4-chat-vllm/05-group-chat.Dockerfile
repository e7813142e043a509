# lazyllm layer: group-chat
FROM lazyllm/group-vllm:f8afb9e4aac0d656

COPY constraints.txt /opt/lazyllm/constraints.txt

RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    --mount=type=secret,id=pipconf,target=/run/secrets/pip.conf \
    --mount=type=secret,id=uvconf,target=/run/secrets/uv.toml \
    --mount=type=cache,id=lazyllm-uv,target=/root/.cache/uv \
    --mount=type=bind,source=.,target=/opt/lazyllm-build \
    sh /opt/lazyllm-build/with-host-config.sh /opt/lazyllm/uv/bin/uv pip install --python /opt/venv/bin/python --compile-bytecode \
      -c /opt/lazyllm/constraints.txt -r /opt/lazyllm-build/requirements.txt
RUN pip freeze --all > /opt/lazyllm/freeze/group-chat.txt
LABEL org.lazyllm.accelerator="nvidia" \
      org.lazyllm.constraints="torch==2.6.0+cu124;vllm==0.8.5.post1" \
      org.lazyllm.cuda="12.4" \
      org.lazyllm.groups="vllm,chat" \
      org.lazyllm.kind="layer" \
      org.lazyllm.layer="group-chat" \
      org.lazyllm.managed="true" \
      org.lazyllm.protect="torch,torchvision,torchaudio,vllm" \
      org.lazyllm.python="3.10" \
      org.lazyllm.role="group" \
      org.lazyllm.smoke.group-chat="{\"imports\":[\"openai\",\"tiktoken\"]}" \
      org.opencontainers.image.base.name="nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04" \
      org.opencontainers.image.description="Chat with online and local OpenAI-compatible models: clients and tokenizers." \
      org.opencontainers.image.title="lazyllm group-chat" \
      org.opencontainers.image.vendor="lazyllm-images"
