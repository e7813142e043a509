# lazyllm layer: flash-attn 2.8.3 (compiled from source)
FROM lazyllm/torch:f389985fc4914477
COPY constraints.txt /opt/lazyllm/constraints.txt
RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    --mount=type=secret,id=pipconf,target=/run/secrets/pip.conf \
    --mount=type=bind,source=.,target=/opt/lazyllm-build \
    --mount=type=cache,id=lazyllm-pip,target=/root/.cache/pip \
    sh /opt/lazyllm-build/with-host-config.sh pip install packaging ninja psutil einops \
 && MAX_JOBS=4 sh /opt/lazyllm-build/with-host-config.sh pip install --no-build-isolation "flash-attn==2.8.3"
RUN pip freeze --all > /opt/lazyllm/freeze/flash-attn.txt
LABEL org.lazyllm.accelerator="nvidia" \
      org.lazyllm.constraints="torch==2.13.0+cu130" \
      org.lazyllm.cuda="13.0" \
      org.lazyllm.groups="" \
      org.lazyllm.kind="layer" \
      org.lazyllm.layer="flash-attn" \
      org.lazyllm.managed="true" \
      org.lazyllm.protect="torch,torchvision,torchaudio,flash-attn" \
      org.lazyllm.python="3.10" \
      org.lazyllm.role="flash-attn" \
      org.lazyllm.smoke.flash-attn="{\"gpu\":[\"import flash_attn\"]}" \
      org.opencontainers.image.base.name="nvidia/cuda:13.0.1-cudnn-devel-ubuntu22.04" \
      org.opencontainers.image.description="flash-attn from its prebuilt wheel for this CUDA/torch/Python, or compiled on a devel base when none fits." \
      org.opencontainers.image.title="lazyllm flash-attn" \
      org.opencontainers.image.vendor="lazyllm-images"
