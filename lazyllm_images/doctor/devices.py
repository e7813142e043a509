"""Other accelerators: AMD ROCm (/dev/kfd, /dev/dri) and Ascend NPUs (/dev/davinci*)."""

from . import OK, Check


def check(ctx: dict) -> Check:
    from ..host import amd_devices, ascend_devices
    amd, ascend = amd_devices(), ascend_devices()
    parts = []
    if amd:
        parts.append(f"AMD ROCm devices: {', '.join(amd)}")
    if ascend:
        parts.append(f"Ascend NPUs: {', '.join(ascend)}")
    return Check("accelerators", OK, "; ".join(parts) if parts else "no AMD or Ascend devices",
                 data={"amd": amd, "ascend": ascend})
