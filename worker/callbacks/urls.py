"""Which URLs may receive callbacks: the check the API runs at submission and delivery
runs again before every attempt (DNS may have changed in between)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


def callback_url_problem(
    url: str, *, allow_private: bool, resolve: bool = True, port: int | None = None
) -> str | None:
    """Why ``url`` may not receive callbacks, or ``None`` if it may.

    Refuses anything but http(s) with a host and, unless ``allow_private``
    (``SHOAL_ALLOW_PRIVATE_CALLBACKS``), hosts that are or resolve to private,
    loopback, link-local, shared, multicast or reserved addresses — so a tenant
    cannot make shoal call into the network it runs in.
    ``resolve=False`` checks IP literals only.
    """
    try:
        parts = urlsplit(url)
        host, url_port = parts.hostname, parts.port
    except ValueError as exc:
        return f"callback_url is not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        return "callback_url must be an http or https URL with a host"
    if allow_private:
        return None
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if not resolve:
            return None
        default = 443 if scheme == "https" else 80
        try:
            infos = socket.getaddrinfo(host, port or url_port or default, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            return f"callback_url: host {host!r} does not resolve ({exc})"
        # An IPv6 zone id ("fe80::1%eth0") is not part of the address.
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for address in addresses:
        if not is_public(address):
            return (
                f"callback_url: {host} resolves to {address}, a private, loopback, link-local "
                "or reserved address; callbacks go to public addresses only"
            )
    return None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address on the public internet (an IPv4-mapped one judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_unspecified
    )
