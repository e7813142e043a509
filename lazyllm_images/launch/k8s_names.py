"""Kubernetes' names for the k8s target (``launch.k8s``): DNS labels for objects, Services and volumes."""

from __future__ import annotations

import re


def k8s_name(name: str) -> str:
    """A DNS-1123 label: lower case, digits and '-', at most 63 characters."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    if not out:
        raise ValueError(f"{name!r} gives no Kubernetes name")
    return out


def service_name(name: str) -> str:
    """A DNS-1035 label (a Service's name, the host name other pods use): a DNS-1123 label starting with a
    letter."""
    out = k8s_name(name)
    return out if out[0].isalpha() else k8s_name("x-" + out)
