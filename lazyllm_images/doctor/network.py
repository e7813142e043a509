"""What builds need from the network settings: proxies, the CA bundle (TLS-intercepting proxies), pip's indexes."""

import os

from . import OK, WARN, Check


def check(ctx: dict) -> Check:
    from ..host import ca_bundle, pip_settings, proxy_env
    pip = pip_settings()
    bundle = ca_bundle()
    proxies = proxy_env()
    data = {"ca_bundle": bundle, "proxies": {k: _redact(v) for k, v in proxies.items()},
            "pip": {**pip.to_dict(), "index_url": _redact(pip.index_url),
                    "extra_index_urls": [_redact(u) for u in pip.extra_index_urls]},
            "wheelhouses": pip.local_find_links()}
    named = [os.environ.get(k) for k in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE") if os.environ.get(k)]
    missing = [p for p in named if not os.path.isfile(p)]
    if missing:
        return Check("network", WARN, f"CA bundle named but missing: {', '.join(missing)}",
                     "point PIP_CERT / REQUESTS_CA_BUNDLE / SSL_CERT_FILE at an existing bundle", data=data)
    parts = [f"CA bundle {bundle} (passed to builds as a secret)" if bundle else "no custom CA bundle"]
    if proxies:
        parts.append("proxy " + ", ".join(sorted({k.upper() for k in proxies})))
    if data["wheelhouses"]:
        parts.append("wheelhouse " + ", ".join(data["wheelhouses"]))
    return Check("network", OK, "; ".join(parts), data=data)


def _redact(url):
    """Hide credentials in URLs (https://user:token@host -> https://***@host)."""
    if not url or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
