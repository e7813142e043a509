"""lazyllm-images: layered container images for LLM applications, and their launchers."""

__version__ = "0.1.0"

LABEL_PREFIX = "org.lazyllm"
MANAGED_LABEL = f"{LABEL_PREFIX}.managed"
