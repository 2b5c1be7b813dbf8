"""The SSRF policy: URL spellings, address ranges, DNS answers, redirects. Network traffic stays on loopback."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from imageextract.extract.fetcher import SafeFetcher
from imageextract.extract.ssrf import check_url, is_blocked_ip, parse_url
from imageextract.extract.types import ExtractError, ExtractOptions
from tests.extract.webfixtures import options

NO_ALLOW = ExtractOptions(connect_timeout=2.0, read_timeout=2.0, total_timeout=5.0)

# (url, expected error code). None of these may ever be fetched without an allow list.
BAD_URLS = [
    ("http://127.0.0.1/", "ssrf_blocked"),
    ("http://2130706433/", "ssrf_blocked"),  # decimal
    ("http://0177.0.0.1/", "ssrf_blocked"),  # octal
    ("http://0x7f.0.0.1/", "ssrf_blocked"),  # hex
    ("http://0x7f.1/", "ssrf_blocked"),  # hex, short form
    ("http://127.1/", "ssrf_blocked"),  # short form
    ("http://127.0.1/", "ssrf_blocked"),
    ("http://0x7f000001/", "ssrf_blocked"),
    ("http://017700000001/", "ssrf_blocked"),
    ("http://127.0.0.1./", "ssrf_blocked"),  # trailing dot
    ("http://%31%32%37.0.0.1/", "ssrf_blocked"),  # percent-encoded host
    ("http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/", "ssrf_blocked"),  # full-width digits and dots
    ("http://0/", "ssrf_blocked"),
    ("http://0.0.0.0:8080/", "ssrf_blocked"),
    ("http://[::1]/", "ssrf_blocked"),
    ("http://[::]/", "ssrf_blocked"),
    ("http://[0:0:0:0:0:0:0:1]/", "ssrf_blocked"),
    ("http://[::ffff:127.0.0.1]/", "ssrf_blocked"),  # IPv4-mapped
    ("http://[::ffff:7f00:1]/", "ssrf_blocked"),
    ("http://[::ffff:169.254.169.254]/", "ssrf_blocked"),
    ("http://[::127.0.0.1]/", "ssrf_blocked"),  # IPv4-compatible (deprecated)
    ("http://[64:ff9b::127.0.0.1]/", "ssrf_blocked"),  # NAT64 to loopback
    ("http://[64:ff9b::a9fe:a9fe]/", "ssrf_blocked"),  # NAT64 to metadata
    ("http://[64:ff9b:1::1]/", "ssrf_blocked"),  # local-use NAT64
    ("http://[2002:7f00:1::1]/", "ssrf_blocked"),  # 6to4 of 127.0.0.1
    ("http://[2002:a9fe:a9fe::1]/", "ssrf_blocked"),  # 6to4 of 169.254.169.254
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "ssrf_blocked"),  # Teredo
    ("http://[fe80::1]/", "ssrf_blocked"),  # link-local
    ("http://[fe80::1%25eth0]/", "ssrf_blocked"),  # zone id
    ("http://[fc00::1]/", "ssrf_blocked"),  # ULA
    ("http://[fd12:3456:789a::1]/", "ssrf_blocked"),
    ("http://[fec0::1]/", "ssrf_blocked"),  # site-local
    ("http://[ff02::1]/", "ssrf_blocked"),  # multicast
    ("http://[2001:db8::1]/", "ssrf_blocked"),  # documentation
    ("http://[100::1]/", "ssrf_blocked"),  # discard
    ("http://169.254.169.254/latest/meta-data/", "ssrf_blocked"),  # cloud metadata
    ("http://169.254.169.254.", "ssrf_blocked"),
    ("http://0xa9fea9fe/", "ssrf_blocked"),
    ("http://2852039166/", "ssrf_blocked"),  # 169.254.169.254 in decimal
    ("http://10.0.0.1/", "ssrf_blocked"),
    ("http://10.1/", "ssrf_blocked"),
    ("http://172.16.0.1/", "ssrf_blocked"),
    ("http://172.31.255.255/", "ssrf_blocked"),
    ("http://192.168.0.1/", "ssrf_blocked"),
    ("http://100.64.0.1/", "ssrf_blocked"),  # CGNAT
    ("http://100.127.255.254/", "ssrf_blocked"),
    ("http://198.18.0.1/", "ssrf_blocked"),  # benchmarking
    ("http://198.19.255.255/", "ssrf_blocked"),
    ("http://192.0.2.10/", "ssrf_blocked"),  # TEST-NET-1
    ("http://198.51.100.7/", "ssrf_blocked"),  # TEST-NET-2
    ("http://203.0.113.9/", "ssrf_blocked"),  # TEST-NET-3
    ("http://192.0.0.8/", "ssrf_blocked"),  # IETF protocol assignments
    ("http://192.88.99.1/", "ssrf_blocked"),  # 6to4 relay
    ("http://224.0.0.1/", "ssrf_blocked"),  # multicast
    ("http://239.255.255.250/", "ssrf_blocked"),
    ("http://240.0.0.1/", "ssrf_blocked"),  # reserved
    ("http://255.255.255.255/", "ssrf_blocked"),  # broadcast
    ("http://evil.example@127.0.0.1/", "ssrf_blocked"),  # userinfo: the host is what follows '@'
    ("http://user:pass@169.254.169.254/", "ssrf_blocked"),
    ("http://127.0.0.1\\@evil.example/", "ssrf_blocked"),  # backslash ends the authority, as in browsers
    ("http://127.0.0.1#@evil.example/", "ssrf_blocked"),
    ("http:/127.0.0.1/", "ssrf_blocked"),  # missing slash
    ("http:\\\\127.0.0.1\\", "ssrf_blocked"),
    ("  http://127.0.0.1/  ", "ssrf_blocked"),
    ("http://12\t7.0.0.1/", "ssrf_blocked"),  # tabs are stripped from URLs
    ("HTTP://LOCALHOST/", "ssrf_blocked"),  # resolves to loopback
    ("http://1.2.3.4.5/", "ssrf_blocked"),  # malformed numeric host
    ("http://evil.0x7f/", "ssrf_blocked"),  # a host ending in a number must be an IPv4 address
    ("http://256.256.256.256/", "ssrf_blocked"),
    ("http://0x100000000/", "ssrf_blocked"),
    ("file:///etc/passwd", "ssrf_blocked"),
    ("file://localhost/etc/passwd", "ssrf_blocked"),
    ("gopher://127.0.0.1:6379/_INFO", "ssrf_blocked"),
    ("ftp://example.com/file", "ssrf_blocked"),
    ("dict://127.0.0.1:11211/stat", "ssrf_blocked"),
    ("ldap://127.0.0.1/", "ssrf_blocked"),
    ("javascript:alert(1)", "ssrf_blocked"),
    ("data:text/html,hello", "ssrf_blocked"),
    ("jar:http://example.com/x.jar!/", "ssrf_blocked"),
    ("http:///", "unsupported_input"),
    ("http://:80/", "unsupported_input"),
    ("http://[::1/", "unsupported_input"),
    ("http://example.com:99999/", "unsupported_input"),
    ("http://example.com:0/", "unsupported_input"),
    ("http://exa mple.com/", "unsupported_input"),
    ("not a url", "unsupported_input"),
    ("", "unsupported_input"),
]


@pytest.mark.parametrize(("url", "code"), BAD_URLS, ids=[repr(u) for u, _ in BAD_URLS])
async def test_bad_urls_are_rejected(url: str, code: str) -> None:
    with pytest.raises(ExtractError) as info:
        await check_url(url, NO_ALLOW)
    assert info.value.code == code, info.value.message


def test_the_table_is_big_enough() -> None:
    assert sum(1 for _u, c in BAD_URLS if c == "ssrf_blocked") >= 30


@pytest.mark.parametrize(
    ("url", "normalised", "ip"),
    [
        ("http://2130706433/x", "http://127.0.0.1/x", "127.0.0.1"),
        ("http://0x7f.1:8080/", "http://127.0.0.1:8080/", "127.0.0.1"),
        ("HTTPS://Example.COM.:443/a%20b?q=1#frag", "https://example.com/a%20b?q=1", None),
        ("http://user:secret@example.com/", "http://example.com/", None),
        ("http://[::FFFF:127.0.0.1]/", "http://127.0.0.1/", "127.0.0.1"),
        ("http://[2606:4700::1]:8443/p", "http://[2606:4700::1]:8443/p", "2606:4700::1"),
        ("http://bücher.example/ü", "http://xn--bcher-kva.example/%C3%BC", None),
        ("http://example.com", "http://example.com/", None),
        ("http://example.com\\path\\x.png", "http://example.com/path/x.png", None),
    ],
)
def test_parse_url_normalises(url: str, normalised: str, ip: str | None) -> None:
    parsed = parse_url(url)
    assert parsed.url == normalised
    assert parsed.ip == (ipaddress.ip_address(ip) if ip else None)


@pytest.mark.parametrize(
    "ip",
    ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "2a00:1450:4001::200e", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_addresses_pass(ip: str) -> None:
    assert not is_blocked_ip(ipaddress.ip_address(ip), ())


async def test_public_ip_literal_is_accepted_without_network() -> None:
    assert await check_url("https://93.184.215.14/x", NO_ALLOW) == [ipaddress.ip_address("93.184.215.14")]


def test_allow_list_exempts_only_its_networks() -> None:
    allow = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    assert not is_blocked_ip("127.0.0.1", allow)
    assert not is_blocked_ip("::ffff:127.0.0.2", allow)  # a mapped address is the IPv4 address
    assert not is_blocked_ip("fd00::5", allow)
    assert is_blocked_ip("10.0.0.1", allow)
    assert is_blocked_ip("::1", allow)
    assert is_blocked_ip("169.254.169.254", allow)


async def test_hostname_resolving_to_a_private_address_is_blocked() -> None:
    with pytest.raises(ExtractError) as info:
        await check_url("http://localhost:8080/", NO_ALLOW)
    assert info.value.code == "ssrf_blocked"
    assert "localhost" in info.value.message


async def test_every_dns_answer_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """One private answer among public ones blocks the host (no round-robin lottery)."""

    def fake_getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list[tuple]:
        assert host == "mixed.test"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 80)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 80)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(ExtractError) as info:
        await check_url("http://mixed.test/", NO_ALLOW)
    assert info.value.code == "ssrf_blocked"
    assert "10.0.0.7" in info.value.message


async def test_dns_failure_is_fetch_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> list[tuple]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(ExtractError) as info:
        await check_url("http://nowhere.test/", NO_ALLOW)
    assert info.value.code == "fetch_failed"


async def test_redirect_to_a_blocked_address_is_refused(web_server_factory) -> None:
    """Serving on 127.0.0.2 (allowed) and redirecting to 127.0.0.1 (not allowed) must stop at the redirect."""
    allowed = web_server_factory("127.0.0.2")
    target = web_server_factory("127.0.0.1")
    target.add("/secret", "internal")
    start = allowed.redirect("/go", target.url("/secret"))
    opts = options(ssrf_allow=(ipaddress.ip_network("127.0.0.2/32"),))
    async with SafeFetcher(opts) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get(start)
    assert info.value.code == "ssrf_blocked"
    assert allowed.paths() == ["/go"]
    assert target.requests == []  # the blocked server never saw a request


async def test_redirect_to_decimal_spelling_of_blocked_address(web_server_factory) -> None:
    allowed = web_server_factory("127.0.0.2")
    target = web_server_factory("127.0.0.1")
    start = allowed.redirect("/go", f"http://2130706433:{target.port}/secret")
    opts = options(ssrf_allow=(ipaddress.ip_network("127.0.0.2/32"),))
    async with SafeFetcher(opts) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get(start)
    assert info.value.code == "ssrf_blocked"
    assert target.requests == []


async def test_without_allow_list_even_loopback_test_server_is_blocked(web_server) -> None:
    web_server.add("/", "<html></html>")
    async with SafeFetcher(NO_ALLOW) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get(web_server.url("/"))
    assert info.value.code == "ssrf_blocked"
    assert web_server.requests == []
