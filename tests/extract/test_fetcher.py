"""SafeFetcher against a real HTTP server on loopback: redirects, caps, timeouts, pinning, POST."""

from __future__ import annotations

import gzip
import time
import zlib

import httpcore
import pytest

from imageextract.extract import ssrf
from imageextract.extract.fetcher import PinnedBackend, SafeFetcher
from imageextract.extract.types import ExtractError
from tests.extract.webfixtures import LocalServer, chunked_handler, options, stall_handler, trickle_handler


async def test_get_returns_status_url_headers_body(web_server: LocalServer, web_options) -> None:
    url = web_server.add("/page", "<p>héllo</p>", "text/html; charset=UTF-8", X_Extra="1")
    async with SafeFetcher(web_options) as fetcher:
        result = await fetcher.get(url)
    assert result.status == 200 and result.ok
    assert result.url == url
    assert result.content == "<p>héllo</p>".encode()
    assert (result.content_type, result.charset) == ("text/html", "utf-8")
    assert result.headers["x-extra"] == "1"
    assert result.redirects == []
    method, path, headers, _body = web_server.requests[0]
    assert (method, path) == ("GET", "/page")
    assert headers["Host"] == f"127.0.0.1:{web_server.port}"
    assert headers["User-Agent"] == web_options.user_agent


async def test_error_statuses_are_returned_not_raised(web_server: LocalServer, web_options) -> None:
    async with SafeFetcher(web_options) as fetcher:
        result = await fetcher.get(web_server.url("/missing"))
    assert result.status == 404 and not result.ok


async def test_redirect_chain_is_followed_and_recorded(web_server: LocalServer, web_options) -> None:
    web_server.add("/final", "done", "text/plain")
    web_server.redirect("/c", "/final", 308)
    web_server.redirect("/b", "c", 303)  # relative Location
    start = web_server.redirect("/a", web_server.url("/b"), 301)
    async with SafeFetcher(web_options) as fetcher:
        result = await fetcher.get(start)
    assert result.url == web_server.url("/final")
    assert result.content == b"done"
    assert result.redirects == [web_server.url(p) for p in ("/a", "/b", "/c")]


async def test_too_many_redirects(web_server: LocalServer) -> None:
    for i in range(10):
        web_server.redirect(f"/r{i}", f"/r{i + 1}")
    web_server.add("/r10", "end")
    async with SafeFetcher(options(max_redirects=5)) as fetcher:
        ok = await fetcher.get(web_server.url("/r5"))  # exactly five hops is fine
        assert ok.content == b"end"
        with pytest.raises(ExtractError) as info:
            await fetcher.get(web_server.url("/r0"))
    assert info.value.code == "fetch_failed"
    assert "redirects" in info.value.message


async def test_redirect_to_other_scheme_is_blocked(web_server: LocalServer, web_options) -> None:
    start = web_server.redirect("/x", "file:///etc/passwd")
    async with SafeFetcher(web_options) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get(start)
    assert info.value.code == "ssrf_blocked"


async def test_redirect_to_metadata_address_is_blocked(web_server: LocalServer, web_options) -> None:
    start = web_server.redirect("/x", "http://169.254.169.254/latest/meta-data/")
    async with SafeFetcher(web_options) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get(start)
    assert info.value.code == "ssrf_blocked"


async def test_size_cap_from_content_length(web_server: LocalServer, web_options) -> None:
    url = web_server.add("/big", b"x" * 5000, "application/octet-stream")
    async with SafeFetcher(web_options) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get(url, max_bytes=1000)
        assert (await fetcher.get(url, max_bytes=5000)).content == b"x" * 5000
    assert info.value.code == "fetch_failed"
    assert "larger than 1000 bytes" in info.value.message


async def test_size_cap_while_streaming_without_content_length(web_server: LocalServer, web_options) -> None:
    url = web_server.handle("/chunked", chunked_handler(b"y" * 300_000))
    async with SafeFetcher(web_options) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get(url, max_bytes=100_000)
    assert info.value.code == "fetch_failed"


async def test_gzip_is_decoded_and_the_decoded_size_is_capped(web_server: LocalServer, web_options) -> None:
    """A 5 MB gzip bomb (a few KB on the wire) stops at the cap on decoded bytes."""
    small = web_server.handle("/small", chunked_handler(b"abc" * 100, encoding="gzip"))
    bomb = web_server.add("/bomb", gzip.compress(b"\0" * 5_000_000), "text/html", Content_Encoding="gzip")
    async with SafeFetcher(web_options) as fetcher:
        assert (await fetcher.get(small)).content == b"abc" * 100
        started = time.monotonic()
        with pytest.raises(ExtractError) as info:
            await fetcher.get(bomb, max_bytes=100_000)
    assert info.value.code == "fetch_failed"
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("wrapper", ["zlib", "raw"])
async def test_deflate_in_both_spellings(web_server: LocalServer, web_options, wrapper: str) -> None:
    body = b"deflated " * 50
    if wrapper == "zlib":
        payload = zlib.compress(body)
    else:
        c = zlib.compressobj(wbits=-15)
        payload = c.compress(body) + c.flush()
    url = web_server.add("/d", payload, "text/plain", Content_Encoding="deflate")
    async with SafeFetcher(web_options) as fetcher:
        assert (await fetcher.get(url)).content == body


async def test_unknown_content_encoding_is_refused(web_server: LocalServer, web_options) -> None:
    url = web_server.add("/br", b"\x0b\x02\x80hello\x03", "text/plain", Content_Encoding="br")
    async with SafeFetcher(web_options) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get(url)
    assert info.value.code == "fetch_failed"


async def test_read_timeout_on_a_stalled_body(web_server: LocalServer) -> None:
    url = web_server.handle("/stall", stall_handler(web_server))
    started = time.monotonic()
    async with SafeFetcher(options(read_timeout=0.5, total_timeout=5)) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get(url)
    assert info.value.code == "timeout"
    assert time.monotonic() - started < 2


async def test_total_timeout_on_a_trickling_body(web_server: LocalServer) -> None:
    """Each chunk arrives inside the read timeout, but the whole transfer exceeds the total timeout."""
    url = web_server.handle("/trickle", trickle_handler(web_server, b"z" * 10, 0.1, 100))
    started = time.monotonic()
    async with SafeFetcher(options(read_timeout=1.0, total_timeout=0.8)) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get(url)
    assert info.value.code == "timeout"
    assert time.monotonic() - started < 2


async def test_connection_refused_is_fetch_failed(web_server_factory, web_options) -> None:
    server = web_server_factory()
    dead = server.url("/")
    server.close()
    async with SafeFetcher(web_options) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get(dead)
    assert info.value.code == "fetch_failed"


async def test_proxy_environment_is_ignored(web_server: LocalServer, web_options, monkeypatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://203.0.113.1:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    url = web_server.add("/direct", "direct")
    async with SafeFetcher(web_options) as fetcher:
        assert (await fetcher.get(url)).content == b"direct"


async def test_connections_go_to_the_checked_address_not_a_new_lookup(web_server: LocalServer, web_options, monkeypatch) -> None:
    """The host name is resolved once, by the policy; the connection layer never resolves it again
    (a rebinding DNS server gets one chance, and its answer is checked)."""
    calls: list[str] = []

    async def fake_resolve(host: str, port: int, options) -> list:
        calls.append(host)
        return [ssrf.check_ip(ssrf.ipaddress.ip_address("127.0.0.1"), options, host=host)]

    monkeypatch.setattr(ssrf, "resolve_host", fake_resolve)
    web_server.add("/a", "first")
    web_server.add("/b", "second")
    async with SafeFetcher(web_options) as fetcher:
        first = await fetcher.get(f"http://rebind.test:{web_server.port}/a")
        second = await fetcher.get(f"http://rebind.test:{web_server.port}/b")
    assert (first.content, second.content) == (b"first", b"second")
    assert calls == ["rebind.test"]  # one lookup per fetcher
    assert web_server.requests[0][2]["Host"] == f"rebind.test:{web_server.port}"


async def test_pinned_backend_refuses_unchecked_hosts() -> None:
    backend = PinnedBackend()
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("example.com", 80, timeout=1)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_unix_socket("/var/run/docker.sock")


async def test_post_sends_body_and_does_not_follow_redirects_by_default(web_server: LocalServer, web_options) -> None:
    def echo(req) -> None:
        body = web_server.requests[-1][3]
        req.send_response(201)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    url = web_server.handle("/hook", echo)
    moved = web_server.redirect("/moved", "/hook", 307)
    async with SafeFetcher(web_options) as fetcher:
        result = await fetcher.post(url, b'{"event":"job.done"}', {"Content-Type": "application/json", "X-Signature": "abc"})
        not_followed = await fetcher.post(moved, b"{}", {"Content-Type": "application/json"})
        followed = await fetcher.post(moved, b'{"again":1}', {"Content-Type": "application/json"}, follow_redirects=True)
    assert (result.status, result.content) == (201, b'{"event":"job.done"}')
    method, _path, headers, body = web_server.requests[0]
    assert (method, body, headers["X-Signature"], headers["Content-Length"]) == ("POST", b'{"event":"job.done"}', "abc", "20")
    assert not_followed.status == 307 and not_followed.headers["location"] == "/hook"
    assert (followed.status, followed.content) == (201, b'{"again":1}')  # 307 keeps method and body


async def test_post_is_checked_like_get(web_options) -> None:
    async with SafeFetcher(web_options) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.post("http://169.254.169.254/hook", b"{}")
    assert info.value.code == "ssrf_blocked"


async def test_303_after_post_becomes_get(web_server: LocalServer, web_options) -> None:
    web_server.add("/result", "see other")
    start = web_server.redirect("/submit", "/result", 303)
    async with SafeFetcher(web_options) as fetcher:
        result = await fetcher.post(start, b"data", {"Content-Type": "text/plain"}, follow_redirects=True)
    assert result.content == b"see other"
    assert [(m, p) for m, p, _h, _b in web_server.requests] == [("POST", "/submit"), ("GET", "/result")]
    assert "Content-Type" not in web_server.requests[1][2]


async def test_tls_is_verified_against_the_hostname_while_connecting_to_the_pinned_address(
    web_server_factory, web_options, monkeypatch
) -> None:
    pytest.importorskip("cryptography")
    from tests.extract.webfixtures import tls_contexts

    server_ctx, client_ctx = tls_contexts("images.test")
    server = web_server_factory("127.0.0.1", tls=server_ctx)
    server.add("/secure", "over tls")

    async def fake_resolve(host: str, port: int, options) -> list:
        return [ssrf.check_ip(ssrf.ipaddress.ip_address("127.0.0.1"), options, host=host)]

    monkeypatch.setattr(ssrf, "resolve_host", fake_resolve)
    async with SafeFetcher(web_options, ssl_context=client_ctx) as fetcher:
        ok = await fetcher.get(f"https://images.test:{server.port}/secure")
        assert (ok.status, ok.content) == (200, b"over tls")
        for wrong in (f"https://other.test:{server.port}/secure", f"https://127.0.0.1:{server.port}/secure"):
            with pytest.raises(ExtractError) as info:
                await fetcher.get(wrong)
            assert info.value.code == "fetch_failed"
            assert "CERTIFICATE_VERIFY_FAILED" in info.value.message or "certificate" in info.value.message.lower()
    assert server.paths() == ["/secure"]


async def test_post_response_body_is_truncated_not_failed(web_server: LocalServer, web_options) -> None:
    url = web_server.add("/chatty", b"k" * 200_000, "text/plain")
    async with SafeFetcher(web_options) as fetcher:
        result = await fetcher.post(url, b"{}", {"Content-Type": "application/json"}, max_bytes=1000)
        with pytest.raises(ExtractError):
            await fetcher.get(url, max_bytes=1000)
    assert (result.status, result.content, result.truncated) == (200, b"k" * 1000, True)


async def test_post_truncates_a_compressed_response_at_the_decoded_cap(web_server: LocalServer, web_options) -> None:
    url = web_server.add("/gz", gzip.compress(b"g" * 500_000), "text/plain", Content_Encoding="gzip")
    async with SafeFetcher(web_options) as fetcher:
        result = await fetcher.post(url, b"{}", max_bytes=4096)
    assert (result.content, result.truncated) == (b"g" * 4096, True)


# Transient or final: decided by the exception's type (and the resolver's error number), never by its text ----


def _resolver_failing_with(monkeypatch: pytest.MonkeyPatch, errno: int, text: str) -> None:
    import asyncio
    import socket

    async def getaddrinfo(self, host, port, **kwargs):  # noqa: ANN001
        raise socket.gaierror(errno, text)

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)


async def test_unknown_host_is_final_even_if_its_message_looks_temporary(monkeypatch, web_options) -> None:
    import socket

    # The text says "temporary"; the error number says the name does not exist: the number wins.
    _resolver_failing_with(monkeypatch, socket.EAI_NONAME, "Temporary failure (ReadTimeout) in name resolution")
    async with SafeFetcher(web_options) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get("http://no-such-host.test/")
    assert info.value.code == "fetch_failed" and info.value.transient is False


async def test_resolver_that_did_not_answer_is_transient(monkeypatch, web_options) -> None:
    import socket

    _resolver_failing_with(monkeypatch, socket.EAI_AGAIN, "Name or service not known")  # the text lies
    async with SafeFetcher(web_options) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get("http://flaky-dns.test/")
    assert info.value.code == "fetch_failed" and info.value.transient is True


async def test_refused_connection_and_timeouts_are_transient(web_server_factory) -> None:
    server = web_server_factory()
    dead = server.url("/")
    server.close()
    async with SafeFetcher(options()) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get(dead)
    assert info.value.transient is True
    live = web_server_factory()
    url = live.handle("/stall", stall_handler(live))
    async with SafeFetcher(options(read_timeout=0.3, total_timeout=5)) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get(url)
    assert info.value.code == "timeout" and info.value.transient is True


async def test_final_fetch_failures_are_not_transient(web_server: LocalServer, web_options) -> None:
    for i in range(8):
        web_server.redirect(f"/loop{i}", f"/loop{i + 1}")
    big = web_server.add("/big", b"x" * 5000, "text/plain")
    async with SafeFetcher(options(max_redirects=2)) as fetcher:
        for url, kwargs in ((web_server.url("/loop0"), {}), (big, {"max_bytes": 100})):
            with pytest.raises(ExtractError) as info:
                await fetcher.get(url, **kwargs)
            assert info.value.code == "fetch_failed" and info.value.transient is False
    async with SafeFetcher(web_options) as fetcher:
        with pytest.raises(ExtractError) as info:
            await fetcher.get("http://169.254.169.254/latest/meta-data")
    assert info.value.code == "ssrf_blocked" and info.value.transient is False


def test_is_transient_error_by_type() -> None:
    import socket
    import ssl

    from imageextract.extract.fetcher import is_transient_error

    def wrapped(inner: BaseException) -> httpcore.ConnectError:
        try:
            try:
                raise inner
            except BaseException as exc:
                raise httpcore.ConnectError(str(exc)) from exc
        except httpcore.ConnectError as outer:
            return outer

    assert is_transient_error(wrapped(socket.gaierror(socket.EAI_NONAME, "x"))) is False
    assert is_transient_error(wrapped(socket.gaierror(socket.EAI_AGAIN, "x"))) is True
    assert is_transient_error(wrapped(ssl.SSLCertVerificationError("bad cert"))) is False
    assert is_transient_error(wrapped(ConnectionResetError("reset"))) is True
    assert is_transient_error(httpcore.ReadError("peer closed")) is True
    assert is_transient_error(httpcore.RemoteProtocolError("server disconnected")) is True
    assert is_transient_error(httpcore.UnsupportedProtocol("gopher")) is False
    assert is_transient_error(httpcore.LocalProtocolError("bad header")) is False
    assert is_transient_error(httpcore.ConnectTimeout("slow")) is True


async def test_engine_result_carries_the_classification(web_server: LocalServer, web_options) -> None:
    from imageextract.extract.engine import extract_url

    web_server.add("/busy", "try later", "text/plain", status=503)
    busy = await extract_url(web_server.url("/busy"), web_options)
    missing = await extract_url(web_server.url("/missing"), web_options)
    assert (busy.status, busy.error_code, busy.transient) == ("failed", "fetch_failed", True)
    assert (missing.status, missing.error_code, missing.transient) == ("failed", "fetch_failed", False)
    assert busy.to_dict()["transient"] is True
