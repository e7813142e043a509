# lazyllm layer: framework-mindie
FROM lazyllm/python:c7ce2a2dbcfcacfd

COPY constraints.txt /opt/lazyllm/constraints.txt
ENV MINDIE_LOG_TO_STDOUT="1"

RUN pip freeze --all > /opt/lazyllm/freeze/framework-mindie.txt
LABEL org.lazyllm.accelerator="ascend" \
      org.lazyllm.constraints="" \
      org.lazyllm.cuda="" \
      org.lazyllm.groups="mindie" \
      org.lazyllm.kind="layer" \
      org.lazyllm.launch.framework-mindie="{\"gpu\":\"required\",\"health\":\"/v1/models\",\"mounts\":[{\"purpose\":\"Ascend driver from the host\",\"target\":\"/usr/local/Ascend/driver\"},{\"purpose\":\"DCMI tools from the host\",\"target\":\"/usr/local/dcmi\"}],\"ports\":[{\"name\":\"api\",\"port\":1025}],\"shm_size\":\"16g\"}" \
      org.lazyllm.layer="framework-mindie" \
      org.lazyllm.managed="true" \
      org.lazyllm.protect="" \
      org.lazyllm.python="3.11" \
      org.lazyllm.role="framework" \
      org.lazyllm.smoke.framework-mindie="{\"commands\":[[\"sh\",\"-c\",\"command -v mindieservice_daemon || ls /usr/local/Ascend/mindie\"]]}" \
      org.opencontainers.image.base.name="swr.cn-south-1.myhuaweicloud.com/ascendhub/mindie:2.0.RC1-800I-A2-py311-openeuler24.03-lts" \
      org.opencontainers.image.description="MindIE service on Ascend NPUs (the base image ships mindieservice_daemon; this layer adds the launcher's config handling)." \
      org.opencontainers.image.title="lazyllm framework-mindie" \
      org.opencontainers.image.vendor="lazyllm-images"
