# lazyllm layer: group-finetune
FROM lazyllm/flash-attn:3be04948925c2602

COPY constraints.txt /opt/lazyllm/constraints.txt

RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    --mount=type=secret,id=pipconf,target=/run/secrets/pip.conf \
    --mount=type=secret,id=uvconf,target=/run/secrets/uv.toml \
    --mount=type=cache,id=lazyllm-uv,target=/root/.cache/uv \
    --mount=type=bind,source=.,target=/opt/lazyllm-build \
    sh /opt/lazyllm-build/with-host-config.sh /opt/lazyllm/uv/bin/uv pip install --python /opt/venv/bin/python --compile-bytecode \
      -c /opt/lazyllm/constraints.txt -r /opt/lazyllm-build/requirements.txt
RUN pip freeze --all > /opt/lazyllm/freeze/group-finetune.txt
LABEL org.lazyllm.accelerator="nvidia" \
      org.lazyllm.constraints="torch==2.8.0+cu128;flash-attn==2.8.3" \
      org.lazyllm.cuda="12.8" \
      org.lazyllm.groups="finetune" \
      org.lazyllm.kind="layer" \
      org.lazyllm.layer="group-finetune" \
      org.lazyllm.managed="true" \
      org.lazyllm.protect="torch,torchvision,torchaudio,flash-attn" \
      org.lazyllm.python="3.10" \
      org.lazyllm.role="group" \
      org.lazyllm.smoke.group-finetune="{\"imports\":[\"transformers\",\"peft\",\"trl\",\"datasets\",\"accelerate\"]}" \
      org.opencontainers.image.base.name="nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04" \
      org.opencontainers.image.description="Fine-tuning: transformers, PEFT/LoRA, TRL (SFT, DPO, pre-training), datasets, accelerate; flash-attn on CUDA. The training service's jobs run in this stack (the same on the CPU and on GPUs)." \
      org.opencontainers.image.title="lazyllm group-finetune" \
      org.opencontainers.image.vendor="lazyllm-images"
