"""Is the Docker engine reachable, and which version/API does it speak?"""

from . import FAIL, OK, Check


def check(ctx: dict) -> Check:
    from .. import engine
    from ..errors import EngineError
    try:
        client = engine.client()
        version = client.version()
        info = client.info()
    except EngineError as exc:
        return Check("engine", FAIL, exc.message, exc.hint, blocking=True)
    ctx["engine_info"] = info
    data = {"version": version.get("Version"), "api_version": version.get("ApiVersion"),
            "root_dir": info.get("DockerRootDir"), "storage_driver": info.get("Driver"),
            "runtimes": sorted((info.get("Runtimes") or {}).keys()),
            "cdi_spec_dirs": info.get("CDISpecDirs") or []}
    return Check("engine", OK, f"Docker {data['version']} (API {data['api_version']}, {data['storage_driver']})",
                 data=data, blocking=True)
