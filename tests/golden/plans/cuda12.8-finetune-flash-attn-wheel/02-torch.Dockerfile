# lazyllm layer: torch 2.8.0 (cu128): the host's wheelhouse first, else the PyTorch index
FROM lazyllm/python:55927d54f7afe3e9
COPY constraints.txt /opt/lazyllm/constraints.txt
RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    --mount=type=secret,id=pipconf,target=/run/secrets/pip.conf \
    --mount=type=secret,id=uvconf,target=/run/secrets/uv.toml \
    --mount=type=cache,id=lazyllm-uv,target=/root/.cache/uv \
    --mount=type=bind,source=.,target=/opt/lazyllm-build \
    sh /opt/lazyllm-build/with-host-config.sh sh -c '/opt/lazyllm/uv/bin/uv pip install --python /opt/venv/bin/python --compile-bytecode -c /opt/lazyllm/constraints.txt -r /opt/lazyllm-build/requirements.txt \
      || /opt/lazyllm/uv/bin/uv pip install --python /opt/venv/bin/python --compile-bytecode -c /opt/lazyllm/constraints.txt --extra-index-url https://download.pytorch.org/whl/cu128 -r /opt/lazyllm-build/requirements.txt'
RUN pip freeze --all > /opt/lazyllm/freeze/torch.txt
LABEL org.lazyllm.accelerator="nvidia" \
      org.lazyllm.constraints="torch==2.8.0+cu128" \
      org.lazyllm.cuda="12.8" \
      org.lazyllm.groups="" \
      org.lazyllm.kind="layer" \
      org.lazyllm.layer="torch" \
      org.lazyllm.managed="true" \
      org.lazyllm.protect="torch,torchvision,torchaudio" \
      org.lazyllm.python="3.10" \
      org.lazyllm.role="torch" \
      org.lazyllm.smoke.torch="{\"gpu\":[\"import torch; assert torch.cuda.is_available(), 'CUDA not available'; torch.ones(1).cuda()\"],\"imports\":[\"torch\"]}" \
      org.lazyllm.torch="2.8.0+cu128" \
      org.opencontainers.image.base.name="nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04" \
      org.opencontainers.image.description="torch in the variant that matches the base (cuXY on CUDA bases, +cpu elsewhere), taken from the host's wheelhouse when it has the exact wheel. Protected for every layer above." \
      org.opencontainers.image.title="lazyllm torch" \
      org.opencontainers.image.vendor="lazyllm-images"
