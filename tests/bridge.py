"""Where a container reaches the host: the host's address on the engine's default bridge."""

from __future__ import annotations

import ipaddress
import re
import subprocess


def bridge_gateway(client) -> str:
    """IPAM's ``Gateway`` when the engine reports it; it does not when dockerd adopted a ``docker0`` left by an
    earlier engine (seen on a fresh machine: only ``Subnet``), and then the interface's own address tells, or
    the subnet's first host."""
    attrs = client.networks.get("bridge").attrs
    configs = attrs.get("IPAM", {}).get("Config") or []
    for config in configs:
        if config.get("Gateway"):
            return config["Gateway"].split("/")[0]
    device = (attrs.get("Options") or {}).get("com.docker.network.bridge.name", "docker0")
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", device], capture_output=True, text=True)
    found = re.search(r"\binet (\d+\.\d+\.\d+\.\d+)/", shown.stdout)
    if found:
        return found.group(1)
    subnet = next(c["Subnet"] for c in configs if c.get("Subnet"))
    return str(next(ipaddress.ip_network(subnet).hosts()))
