"""Is the Docker engine reachable, which versions does it speak, and which one does the tool speak to it?"""

from . import FAIL, OK, Check


def check(ctx: dict) -> Check:
    from .. import engine
    from ..errors import EngineError
    try:
        facts = engine.version_facts()
        api = engine.api_version()
        info = engine.client().info()
    except EngineError as exc:
        return Check("engine", FAIL, exc.message, exc.hint, blocking=True)
    ctx["engine_info"] = info
    data = {"version": facts.get("Version"), "api_version": facts.get("ApiVersion"),
            "min_api_version": facts.get("MinAPIVersion"), "negotiated_api_version": api,
            "host": engine.docker_host(), "root_dir": info.get("DockerRootDir"), "storage_driver": info.get("Driver"),
            "runtimes": sorted((info.get("Runtimes") or {}).keys()),
            "cdi_spec_dirs": info.get("CDISpecDirs") or []}
    return Check("engine", OK, f"Docker {data['version']} (API {data['min_api_version']}..{data['api_version']}, "
                 f"lazyllm speaks {api}; {data['storage_driver']})", data=data, blocking=True)
