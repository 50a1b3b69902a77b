"""Request-time checks of an MCP server: the caller's ``headers`` / ``authorization`` (:func:`validate_headers`)
and the destination (:func:`check_destination`: scheme, credentials and an SSRF check of every address the host
resolves to). :func:`address_allowed` is the one address policy, also applied by the transport to the address
each TCP connection actually goes to."""

from __future__ import annotations

import re

from engine.errors import InvalidRequestError
from engine.tools.mcp.base import log_warning

__all__ = ["address_allowed", "check_destination", "origin", "validate_headers"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"[\t\x20-\x7e]*")
_MAX_HEADER_BYTES = 8 * 1024
# Hop-by-hop headers, and the ones the MCP transports set themselves: a caller may not override either.
_DENIED_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer",
    "upgrade", "expect", "proxy-authorization", "accept", "accept-encoding", "content-type", "content-encoding",
    "cookie", "last-event-id", "mcp-session-id", "mcp-protocol-version",
})  # fmt: skip


def validate_headers(
    headers: dict[str, str] | None, authorization: str | None, *, param: str = "headers"
) -> dict[str, str]:
    """Check the caller's headers for an MCP server and fold ``authorization`` in as ``Authorization: Bearer …``.

    Raises :class:`InvalidRequestError` (``param``; ``…authorization`` for that field) for a name that is not an
    HTTP token, a value with control or non-ASCII characters, a hop-by-hop or MCP protocol header, a name given
    twice, or more than 8 KB in all. Values are never echoed in messages.
    """
    out: dict[str, str] = {}
    seen: set[str] = set()
    size = 0
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise InvalidRequestError(f"Invalid header name {str(name)[:64]!r}: must be an HTTP token.", param=param)
        lower = name.lower()
        if lower in _DENIED_HEADERS or lower.startswith("mcp-"):
            raise InvalidRequestError(f"Header '{name}' cannot be set for an MCP server.", param=param)
        if lower in seen:
            raise InvalidRequestError(f"Header '{name}' is given more than once.", param=param)
        if not isinstance(value, str) or not _VALUE.fullmatch(value):
            raise InvalidRequestError(
                f"Invalid value for header '{name}': must be printable ASCII without line breaks.", param=param
            )
        seen.add(lower)
        size += len(name) + len(value) + 4
        out[name] = value.strip()
    if authorization is not None and authorization.strip():
        auth_param = param.removesuffix("headers") + "authorization" if param.endswith("headers") else param
        if "authorization" in seen:
            raise InvalidRequestError(
                "Give the token either in 'authorization' or as an 'Authorization' header, not both.",
                param=auth_param,
            )
        token = authorization.strip()
        if not _VALUE.fullmatch(token):
            raise InvalidRequestError(
                "Invalid authorization: must be printable ASCII without line breaks.", param=auth_param
            )
        value = token if token[:7].lower() == "bearer " else f"Bearer {token}"
        out["Authorization"] = value
        size += len("Authorization") + len(value) + 4
    if size > _MAX_HEADER_BYTES:
        raise InvalidRequestError(f"Headers for an MCP server may not exceed {_MAX_HEADER_BYTES} bytes.", param=param)
    return out


# Cloud metadata endpoints stay unreachable even when private networks are allowed.
_METADATA_ADDRESSES = frozenset({"169.254.169.254", "169.254.170.2", "169.254.170.23", "fd00:ec2::254", "fd00:ec2::23"})


def address_allowed(ip: str, allow_private: bool) -> bool:
    """Whether the client may connect to ``ip``: a global unicast address, or anything but multicast and cloud
    metadata when ``allow_private``. IPv6 forms that embed an IPv4 address are judged by that address."""
    import ipaddress

    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = addr.ipv4_mapped or addr.sixtofour or (addr.teredo[1] if addr.teredo else None)
        if embedded is None and addr in ipaddress.IPv6Network("64:ff9b::/96"):  # NAT64 well-known prefix
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if embedded is not None:
            addr = embedded
    if str(addr) in _METADATA_ADDRESSES or addr.is_multicast:
        return False
    if allow_private:
        return True
    return addr.is_global and not (addr.is_private or addr.is_reserved or addr.is_loopback or addr.is_link_local)


def origin(url: str) -> str:
    """``scheme://host:port/path`` of a URL, without userinfo or query (which may carry secrets), for logs."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


async def _resolve(host: str, port: int) -> list[str]:
    import socket

    import anyio

    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_destination(url: str, *, allow_private: bool, param: str, dns_timeout: float = 5.0) -> None:
    """Refuse (400, ``param``) an MCP server URL this server must not connect to.

    The URL must be ``http``/``https`` with a host and no userinfo; the host must resolve, and every address it
    resolves to must be public (see :func:`address_allowed`) unless ``allow_private``. The client learns only
    that the URL is unreachable or non-public; the details go to the logs.
    """
    from urllib.parse import urlsplit

    import anyio

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidRequestError("Invalid MCP server URL.", param=param) from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequestError("MCP server URL must use http or https.", param=param)
    if "@" in parts.netloc:
        raise InvalidRequestError(
            "MCP server URL must not contain credentials: use 'authorization' or 'headers'.", param=param
        )
    host = parts.hostname
    if not host:
        raise InvalidRequestError("MCP server URL must include a host.", param=param)
    port = port or (443 if parts.scheme == "https" else 80)
    shown = origin(url)
    try:
        with anyio.fail_after(dns_timeout):
            addresses = await _resolve(host, port)
    except (OSError, TimeoutError, UnicodeError) as exc:
        log_warning("MCP server host does not resolve", url=shown, error=f"{type(exc).__name__}: {exc}")
        raise InvalidRequestError(f"MCP server URL '{shown}' is not reachable from this server.", param=param) from None
    refused = [a for a in addresses if not address_allowed(a, allow_private)]
    if not addresses or refused:
        log_warning("MCP server URL refused: non-public address", url=shown, addresses=refused or addresses)
        raise InvalidRequestError(f"MCP server URL '{shown}' resolves to a non-public address.", param=param)
