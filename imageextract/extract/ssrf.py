"""The SSRF address policy and a WHATWG-style URL parser that sees every spelling of a host.

Contract:
- `parse_url(url) -> SafeURL`: http/https only; the host normalised the way a browser would (percent-decoding,
  UTS #46 mapping, the WHATWG IPv4 parser for decimal/octal/hex/short forms, bracketed IPv6, trailing dots),
  userinfo dropped. Raises ExtractError("ssrf_blocked") for other schemes and smuggled numeric hosts, and
  ExtractError("unsupported_input") for URLs that are simply malformed.
- `is_blocked_ip(ip, allow) -> bool`: True for any address that is not plainly public (loopback, private,
  link-local, CGNAT, multicast, reserved, documentation, benchmarking, ULA...), looking through IPv4-mapped,
  NAT64, 6to4 and Teredo embeddings. Addresses inside an `allow` network are never blocked.
- `async check_url(url, options) -> list[IP]`: parse, resolve once (every DNS answer checked), and return the
  addresses a connection may use. Used by the fetcher for every hop and by the platform at job submission.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import idna

from imageextract.extract.types import ExtractError, ExtractOptions

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS = {"http": 80, "https": 443}

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

BLOCKED_V4: tuple[ipaddress.IPv4Network, ...] = tuple(
    _V4(n)
    for n in (
        "0.0.0.0/8",  # "this network", incl. the unspecified address
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (cloud metadata at 169.254.169.254)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.31.196.0/24",  # AS112-v4
        "192.52.193.0/24",  # AMT
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "192.175.48.0/24",  # AS112 direct delegation
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, incl. broadcast
    )
)

BLOCKED_V6: tuple[ipaddress.IPv6Network, ...] = tuple(
    _V6(n)
    for n in (
        "::/96",  # unspecified, loopback, deprecated IPv4-compatible
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo, benchmarking, ORCHID...)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_GLOBAL_UNICAST_V6 = _V6("2000::/3")
_NAT64 = _V6("64:ff9b::/96")
_SIX_TO_FOUR = _V6("2002::/16")

# WHATWG forbidden domain code points (plus '%', which is only legal before percent-decoding).
_FORBIDDEN_HOST = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^|\x7f]")
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))


@dataclass(frozen=True)
class SafeURL:
    """A parsed, normalised http(s) URL. `host` is ASCII, lower-case, without brackets or trailing dot."""

    scheme: str
    host: str
    port: int
    target: str  # path + query, always starting with "/"
    ip: IPAddress | None  # set when the host is an IP literal (in any spelling)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    @property
    def url(self) -> str:
        return f"{self.origin}{self.target}"

    def __str__(self) -> str:
        return self.url


def _blocked(code: str = "ssrf_blocked", message: str = "address not allowed") -> ExtractError:
    return ExtractError(code, message)  # type: ignore[arg-type]


def parse_url(url: str) -> SafeURL:
    """Parse `url` as a browser would, refusing anything but http(s) and normalising the host."""
    if not isinstance(url, str):
        raise _blocked("unsupported_input", "URL must be a string")
    raw = _TAB_NEWLINE.sub("", url.strip(_C0_AND_SPACE))
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*):(.*)$", raw, re.S)
    if not m:
        raise _blocked("unsupported_input", f"not an absolute URL: {url[:200]!r}")
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme not in DEFAULT_PORTS:
        raise _blocked("ssrf_blocked", f"scheme {scheme!r} is not allowed (http and https only)")
    rest = rest.replace("\\", "/")  # special schemes treat backslash as a slash
    rest = rest.lstrip("/")  # "http:example.com", "http:///example.com" all mean the host that follows
    end = len(rest)
    for sep in "/?#":
        i = rest.find(sep)
        if i != -1:
            end = min(end, i)
    authority, tail = rest[:end], rest[end:]
    authority = authority.rpartition("@")[2]  # userinfo is dropped, and the host is what follows the last '@'
    host_raw, port = _split_port(authority, scheme)
    host, ip = normalise_host(host_raw)
    tail = tail.split("#", 1)[0]
    if not tail.startswith("/"):
        tail = "/" + tail
    return SafeURL(scheme=scheme, host=host, port=port, target=_encode_target(tail), ip=ip)


def _split_port(authority: str, scheme: str) -> tuple[str, int]:
    if authority.startswith("["):
        close = authority.find("]")
        if close == -1:
            raise _blocked("unsupported_input", "unterminated IPv6 literal")
        host, after = authority[: close + 1], authority[close + 1 :]
        if after and not after.startswith(":"):
            raise _blocked("unsupported_input", "garbage after IPv6 literal")
        port_text = after[1:] if after else ""
    else:
        host, _, port_text = authority.partition(":")
    if port_text == "":
        return host, DEFAULT_PORTS[scheme]
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535 or int(port_text) == 0:
        raise _blocked("unsupported_input", f"invalid port {port_text[:20]!r}")
    return host, int(port_text)


def normalise_host(host: str) -> tuple[str, IPAddress | None]:
    """Return (ascii host, ip or None). IP literals in every WHATWG spelling come back as their canonical form."""
    if not host:
        raise _blocked("unsupported_input", "URL has no host")
    if host.startswith("["):
        inner = host[1:-1]
        if "%" in inner:
            raise _blocked("ssrf_blocked", "IPv6 zone identifiers are not allowed")
        try:
            ip6 = ipaddress.IPv6Address(inner)
        except ValueError:
            raise _blocked("unsupported_input", f"invalid IPv6 literal {host[:60]!r}") from None
        return _canonical(ip6)
    try:
        decoded = unquote_to_bytes(host).decode("utf-8")
    except UnicodeDecodeError:
        raise _blocked("unsupported_input", "host is not valid UTF-8") from None
    try:
        mapped = idna.uts46_remap(decoded, std3_rules=False, transitional=False)
    except idna.IDNAError as exc:
        raise _blocked("unsupported_input", f"invalid host: {exc}") from None
    if not mapped or _FORBIDDEN_HOST.search(mapped):
        raise _blocked("unsupported_input", f"invalid host {host[:100]!r}")
    if _ends_in_number(mapped):
        ip4 = _parse_ipv4(mapped)
        if ip4 is None:
            raise _blocked("ssrf_blocked", f"malformed numeric host {host[:100]!r}")
        return _canonical(ip4)
    name = mapped.rstrip(".")
    if not name or ".." in name:
        raise _blocked("unsupported_input", f"invalid host {host[:100]!r}")
    try:
        ascii_name = idna.encode(name, uts46=False).decode("ascii") if not name.isascii() else name
    except idna.IDNAError as exc:
        raise _blocked("unsupported_input", f"invalid internationalised host: {exc}") from None
    if len(ascii_name) > 253:
        raise _blocked("unsupported_input", "host name too long")
    return ascii_name.lower(), None


def _canonical(ip: IPAddress) -> tuple[str, IPAddress]:
    ip = unmap(ip)
    return str(ip), ip


def _ends_in_number(host: str) -> bool:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    if last and all(c in "0123456789" for c in last):
        return True
    return _parse_ipv4_number(last) is not None


def _parse_ipv4_number(part: str) -> int | None:
    if not part:
        return None
    base = 10
    if part[:2] in ("0x", "0X"):
        part, base = part[2:], 16
        if part == "":
            return 0
    elif len(part) > 1 and part[0] == "0":
        part, base = part[1:], 8
    digits = {10: "0123456789", 8: "01234567", 16: "0123456789abcdefABCDEF"}[base]
    if not all(c in digits for c in part):
        return None
    return int(part, base)


def _parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The WHATWG IPv4 parser: 1-4 parts, each decimal, 0-octal or 0x-hex; the last part fills the rest."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4:
        return None
    numbers = [_parse_ipv4_number(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    nums = [n for n in numbers if n is not None]
    if any(n > 255 for n in nums[:-1]) or nums[-1] >= 256 ** (5 - len(nums)):
        return None
    value = nums[-1]
    for i, n in enumerate(nums[:-1]):
        value += n * 256 ** (3 - i)
    return ipaddress.IPv4Address(value)


def _encode_target(target: str) -> str:
    """Percent-encode what must not appear raw in a request target, leaving existing escapes alone."""
    out = []
    for ch in target:
        if ch == "%" or (ch.isascii() and ch.isprintable() and ch not in ' "<>`{}|^'):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


# Address policy --------------------------------------------------------------------------------


def unmap(ip: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (::ffff:a.b.c.d) is the IPv4 address itself."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside a NAT64, 6to4 or Teredo address, if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_blocked_ip(ip: IPAddress | str, allow: Iterable[IPNetwork] = ()) -> bool:
    """True unless `ip` is a plainly public unicast address or falls inside one of the `allow` networks."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip.strip("[]"))
    ip = unmap(ip)
    for net in allow:
        if ip.version == net.version and ip in net:
            return False
    if isinstance(ip, ipaddress.IPv4Address):
        return any(ip in net for net in BLOCKED_V4) or not ip.is_global
    if ip.scope_id:
        return True
    inner = embedded_ipv4(ip)
    if inner is not None and (ip in _NAT64 or ip in _SIX_TO_FOUR) and is_blocked_ip(inner, ()):
        return True
    if ip not in _GLOBAL_UNICAST_V6 and ip not in _NAT64:
        return True
    return any(ip in net for net in BLOCKED_V6) or (ip not in _NAT64 and not ip.is_global)


def check_ip(ip: IPAddress, options: ExtractOptions, *, host: str = "") -> IPAddress:
    if is_blocked_ip(ip, options.ssrf_allow):
        where = f"{host} -> {ip}" if host and host != str(ip) else str(ip)
        raise ExtractError("ssrf_blocked", f"address not allowed: {where}")
    return ip


# getaddrinfo errors that may pass (the resolver did not answer); EAI_NONAME ("name not known") is final.
TRANSIENT_EAI = frozenset(getattr(socket, n) for n in ("EAI_AGAIN", "EAI_SYSTEM", "EAI_MEMORY") if hasattr(socket, n))


async def resolve_host(host: str, port: int, options: ExtractOptions) -> list[IPAddress]:
    """One getaddrinfo lookup (in a thread); every answer must pass the policy or the whole host is refused."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(options.connect_timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except TimeoutError:
        raise ExtractError("timeout", f"DNS lookup for {host} timed out", transient=True) from None
    except socket.gaierror as exc:  # EAI_AGAIN: the resolver did not answer; EAI_NONAME: no such name (final)
        transient = exc.errno in TRANSIENT_EAI
        raise ExtractError("fetch_failed", f"DNS lookup for {host} failed: {exc}", transient=transient) from None
    except (OSError, UnicodeError) as exc:
        raise ExtractError("fetch_failed", f"DNS lookup for {host} failed: {exc}") from None
    ips: list[IPAddress] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = unmap(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
        if family == socket.AF_INET6 and len(sockaddr) > 3 and sockaddr[3]:  # a scoped (link-local) answer
            raise ExtractError("ssrf_blocked", f"address not allowed: {host} -> {sockaddr[0]}")
        check_ip(ip, options, host=host)
        if ip not in ips:
            ips.append(ip)
    if not ips:
        raise ExtractError("fetch_failed", f"DNS lookup for {host} returned no addresses")
    return ips


async def resolve_url(url: str | SafeURL, options: ExtractOptions) -> tuple[SafeURL, list[IPAddress]]:
    parsed = url if isinstance(url, SafeURL) else parse_url(url)
    if parsed.ip is not None:
        return parsed, [check_ip(parsed.ip, options)]
    return parsed, await resolve_host(parsed.host, parsed.port, options)


async def check_url(url: str, options: ExtractOptions) -> list[IPAddress]:
    """Validate `url` against the SSRF policy and return the checked addresses it resolves to.

    Raises ExtractError with code ssrf_blocked (policy), unsupported_input (malformed URL), fetch_failed
    (DNS failure) or timeout (DNS too slow).
    """
    _parsed, ips = await resolve_url(url, options)
    return ips
