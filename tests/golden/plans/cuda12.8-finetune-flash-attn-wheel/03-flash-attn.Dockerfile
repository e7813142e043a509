# lazyllm layer: flash-attn 2.8.3 (prebuilt wheel)
FROM lazyllm/torch:81e42c857942c1ff
COPY constraints.txt /opt/lazyllm/constraints.txt
RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    --mount=type=secret,id=pipconf,target=/run/secrets/pip.conf \
    --mount=type=secret,id=uvconf,target=/run/secrets/uv.toml \
    --mount=type=cache,id=lazyllm-uv,target=/root/.cache/uv \
    --mount=type=bind,source=.,target=/opt/lazyllm-build \
    sh /opt/lazyllm-build/with-host-config.sh /opt/lazyllm/uv/bin/uv pip install --python /opt/venv/bin/python --compile-bytecode \
      -c /opt/lazyllm/constraints.txt "flash-attn @ https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp310-cp310-linux_x86_64.whl"
RUN pip freeze --all > /opt/lazyllm/freeze/flash-attn.txt
LABEL org.lazyllm.accelerator="nvidia" \
      org.lazyllm.constraints="torch==2.8.0+cu128" \
      org.lazyllm.cuda="12.8" \
      org.lazyllm.groups="" \
      org.lazyllm.kind="layer" \
      org.lazyllm.layer="flash-attn" \
      org.lazyllm.managed="true" \
      org.lazyllm.protect="torch,torchvision,torchaudio,flash-attn" \
      org.lazyllm.python="3.10" \
      org.lazyllm.role="flash-attn" \
      org.lazyllm.smoke.flash-attn="{\"gpu\":[\"import flash_attn\"]}" \
      org.opencontainers.image.base.name="nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04" \
      org.opencontainers.image.description="flash-attn from its prebuilt wheel for this CUDA/torch/Python, or compiled on a devel base when none fits." \
      org.opencontainers.image.title="lazyllm flash-attn" \
      org.opencontainers.image.vendor="lazyllm-images"
