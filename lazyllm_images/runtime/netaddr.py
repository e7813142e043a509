"""Who can reach a server bound on an address: loopback tests, this host's own addresses and names, the Host-header
allow-list entries, and the loud warning for a server that anyone on the network can call without a token.

Standard library only: the MCP bridge, the chat page and the RAG service use it inside the images, and the CLI
uses it on the host (``deploy mcp_server`` in a container allows the addresses its port is published on).
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import ipaddress
import socket
import struct
import sys
from collections.abc import Iterable

WILDCARDS = ("", "0.0.0.0", "::", "[::]")
SIOCGIFCONF = 0x8912          # Linux: every IPv4 address of every interface
IF_INET6 = "/proc/net/if_inet6"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host in WILDCARDS


def format_host(host: str, port: int | None = None) -> str:
    """``host`` or ``host:port`` as in a Host header and a URL (IPv6 in brackets)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


def split_host(value: str) -> tuple[str, str | None]:
    """A Host header (or allow-list entry) -> (lower-case name, port or None): ``[::1]:80`` -> ("[::1]", "80")."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value.partition("]")
        return f"{name}]", (rest[1:] if rest.startswith(":") else None)
    name, sep, port = value.rpartition(":")
    return (name, port) if sep else (value, None)


def parse_allowed_host(text: str) -> str:
    """One ``--allowed-host`` value: ``*``, ``HOST`` (any port), ``HOST:PORT`` or ``HOST:*``; IPv6 in brackets.
    Returns it lower-cased; raises ValueError with the reason."""
    if text.strip() == "*":
        return "*"
    name, port = split_host(text)
    bracketed = name.startswith("[") and name.endswith("]") and len(name) > 2
    if not name or not (bracketed or all(c.isalnum() or c in "-._" for c in name)):
        raise ValueError(f"{text!r} is not HOST, HOST:PORT, HOST:* or '*' (IPv6 as [::1]:PORT)")
    if port is not None and not (port == "*" or (port.isdigit() and int(port) <= 65535)):
        raise ValueError(f"{text!r}: the port must be a number 0-65535 or '*'")
    return format_host(name) if port is None else f"{name}:{port}"


def _ipv4_addresses() -> list[str]:
    """Every IPv4 address of this host's interfaces (Linux SIOCGIFCONF; empty elsewhere)."""
    if not sys.platform.startswith("linux"):
        return []
    size = 40 if struct.calcsize("P") == 8 else 32          # struct ifreq
    buf = array.array("B", b"\0" * size * 256)
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        address, length = buf.buffer_info()
        got = struct.unpack("iL", fcntl.ioctl(s.fileno(), SIOCGIFCONF, struct.pack("iL", length, address)))[0]
        raw = buf.tobytes()
        return [socket.inet_ntoa(raw[i + 20:i + 24]) for i in range(0, got, size)]
    return []


def _ipv6_addresses() -> list[str]:
    """Every IPv6 address of this host's interfaces, link-local ones left out (they need a zone in a URL)."""
    found = []
    with contextlib.suppress(OSError), open(IF_INET6, encoding="ascii") as fh:
        for line in fh:
            packed = bytes.fromhex(line.split()[0])
            address = ipaddress.IPv6Address(packed)
            if not address.is_link_local:
                found.append(str(address))
    return found


def _resolved(name: str) -> list[str]:
    with contextlib.suppress(OSError, UnicodeError):
        return [info[4][0] for info in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)]
    return []


def local_names() -> list[str]:
    """This host's name and fully qualified name."""
    return [n for n in dict.fromkeys((socket.gethostname(), socket.getfqdn())) if n]


def local_addresses() -> list[str]:
    """This host's IP addresses (every interface, and what its name resolves to), loopback ones included."""
    found = [*_ipv4_addresses(), *_ipv6_addresses()]
    for name in local_names():
        found += _resolved(name)
    return list(dict.fromkeys(a.split("%")[0] for a in found))


def reachable_as(bind_host: str) -> list[str]:
    """The names a client on the network uses for a server bound on BIND_HOST (for the Host allow-list): nothing
    more than the bind address for loopback; this host's addresses and names for a wildcard; else the bind address
    and this host's names."""
    if is_loopback(bind_host):
        return []
    if is_wildcard(bind_host):
        hosts = [*local_addresses(), *local_names()]
    else:
        hosts = [bind_host, *local_names()]
    return list(dict.fromkeys(format_host(h).lower() for h in hosts if not is_wildcard(h)))


def exposure_warning(what: str, bind_host: str, token: str | None, fix: str, can: str = "use it") -> str | None:
    """The loud warning for WHAT bound beyond loopback without a token (None when there is nothing to warn about)."""
    if token or is_loopback(bind_host):
        return None
    return (f"WARNING: {what} listens on {bind_host}, which is reachable from other machines, and needs no token: "
            f"anyone who can reach this port can {can}. {fix}")


def host_check_off_warning(allowed_hosts: Iterable[str], what: str = "the MCP bridge") -> str | None:
    """The warning for ``--allowed-host '*'`` (None without it)."""
    if "*" not in allowed_hosts:
        return None
    return (f"WARNING: --allowed-host '*' turns the Host check of {what} off: a web page that a browser on this "
            "machine or network opens can reach it by DNS rebinding, so only the bearer token protects it now. "
            "List the names clients use instead (--allowed-host HOST or HOST:PORT).")


def shout(warning: str | None) -> None:
    """Print WARNING to stderr between two rows of '!' (nothing when None)."""
    if warning:
        sys.stderr.write(f"\n{'!' * 78}\n{warning}\n{'!' * 78}\n\n")
        sys.stderr.flush()
