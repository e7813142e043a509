"""Which docker CLI builds with BuildKit (buildx plugin, or a client with BuildKit built in)?"""

from . import FAIL, OK, Check


def check(ctx: dict) -> Check:
    from ..host import BUILDKIT_HINT, buildkit_client
    found = buildkit_client()
    if found is None:
        return Check("buildkit", FAIL, "no BuildKit-capable docker client", BUILDKIT_HINT, blocking=True)
    return Check("buildkit", OK, found.describe(), data={"kind": found.kind, "path": found.path,
                                                         "version": found.version}, blocking=True)
