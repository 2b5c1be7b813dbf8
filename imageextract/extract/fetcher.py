"""An SSRF-safe async HTTP client: every hop checked, every connection pinned to a checked address.

How it stays safe:
- Each host is resolved once per `SafeFetcher` (one getaddrinfo, every answer checked by `ssrf.is_blocked_ip`);
  IP-literal hosts in any spelling are normalised by `ssrf.parse_url` and checked the same way.
- Connections go through `PinnedBackend`, an httpcore network backend whose `connect_tcp` ignores the name it
  is given and connects only to the checked addresses pinned for that host (an unpinned host is refused), so a
  second DNS answer can never be used (no DNS rebinding). TLS is still verified against the hostname (SNI).
- httpcore is used directly: it never reads proxy environment variables (the `trust_env=False` of httpx, by
  construction), never follows redirects and never decodes bodies by itself.
- Redirects are followed here, at most `options.max_redirects`, and every Location is parsed and checked anew.
- Bodies are streamed with a byte cap on the wire and on the decoded (gzip/deflate) output.
- connect/read timeouts per operation, and `options.total_timeout` over the whole request including redirects.

Failures raise ExtractError with code ssrf_blocked, fetch_failed or timeout.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urljoin

import certifi
import httpcore
import httpx

from imageextract.extract.ssrf import TRANSIENT_EAI, IPAddress, SafeURL, parse_url, resolve_url
from imageextract.extract.types import ExtractError, ExtractOptions

# A byte cap, or a function of the response's media type (None when absent) returning one.
ByteLimit = int | Callable[[str | None], int]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Answers that say "not now" rather than "no": trying the same URL again later may succeed.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})
_SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass
class FetchResult:
    status: int
    url: str  # the final URL, after redirects
    headers: httpx.Headers
    content: bytes
    content_type: str | None  # media type only, lower-case ("text/html"), None when absent
    charset: str | None = None
    redirects: list[str] = field(default_factory=list)  # URLs that answered with a redirect, in order
    truncated: bool = False  # the body was cut at the cap (POST only; GET raises instead)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the checked addresses pinned for a host, whatever address the caller would have used."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()
        self._pins: dict[str, tuple[IPAddress, ...]] = {}

    def pin(self, host: str, ips: Iterable[IPAddress]) -> None:
        self._pins[host] = tuple(ips)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        ips = self._pins.get(host)
        if not ips:
            raise httpcore.ConnectError(f"refusing to connect to unchecked host {host!r}")
        error: Exception | None = None
        for ip in ips:
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _TooLarge(Exception):
    pass


class _Decoder:
    """Bounded Content-Encoding decoder: never produces more than the caller's remaining budget.

    Past the budget it raises _TooLarge, or with `truncate` returns what fits and sets `overflowed`."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.overflowed = False
        self._d: Any = None
        if encoding == "gzip":
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def _over(self, out: bytes, budget: int, truncate: bool) -> bytes:
        if not truncate:
            raise _TooLarge
        self.overflowed = True
        return out[:budget]

    def feed(self, data: bytes, budget: int, *, truncate: bool = False) -> bytes:
        if self.encoding == "identity":
            return self._over(data, budget, truncate) if len(data) > budget else data
        if self._d is None:  # deflate: zlib-wrapped per the RFC, raw in the wild
            zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] * 256 + data[1]) % 31 == 0
            self._d = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        out: list[bytes] = []
        produced = 0
        buf = data
        while buf:
            piece = self._d.decompress(buf, budget - produced + 1)
            produced += len(piece)
            out.append(piece)
            if produced > budget:
                return self._over(b"".join(out), budget, truncate)
            buf = self._d.unconsumed_tail
        return b"".join(out)

    def flush(self, budget: int, *, truncate: bool = False) -> bytes:
        if self._d is None or self.overflowed:
            return b""
        tail = self._d.flush()
        return self._over(tail, budget, truncate) if len(tail) > budget else tail


def _decoder_for(headers: httpx.Headers) -> _Decoder:
    codings = [c.strip().lower() for c in headers.get("content-encoding", "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return _Decoder("identity")
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return _Decoder("deflate" if codings[0] == "deflate" else "gzip")
    raise ExtractError("fetch_failed", f"unsupported content-encoding {headers.get('content-encoding')!r}")


def _media_type(headers: httpx.Headers) -> tuple[str | None, str | None]:
    value = headers.get("content-type")
    if not value:
        return None, None
    parts = [p.strip() for p in value.split(";")]
    media = parts[0].lower() or None
    charset = None
    for p in parts[1:]:
        k, _, v = p.partition("=")
        if k.strip().lower() == "charset":
            charset = v.strip().strip('"').lower() or None
    return media, charset


@functools.lru_cache(maxsize=1)
def default_ssl_context() -> ssl.SSLContext:
    """One verifying client context per process: loading the CA bundle costs ~20 ms, and a context is safe to
    share between connections and threads (httpcore only sets the same ALPN list on it each time)."""
    try:
        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi ships with httpx
        return ssl.create_default_context()


class SafeFetcher:
    """One per extraction (or per webhook delivery batch): `async with SafeFetcher(options) as f: await f.get(url)`."""

    def __init__(self, options: ExtractOptions, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.options = options
        self._backend = PinnedBackend()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or default_ssl_context(),
            max_connections=max(1, options.image_fetch_concurrency) + 2,
            keepalive_expiry=30.0,
            network_backend=self._backend,
        )
        self._resolved: dict[str, asyncio.Future[tuple[SafeURL, list[IPAddress]]]] = {}
        self._timeouts = {
            "connect": options.connect_timeout,
            "read": options.read_timeout,
            "write": options.read_timeout,
            "pool": options.total_timeout,
        }

    async def __aenter__(self) -> SafeFetcher:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for future in self._resolved.values():
            if not future.done():
                future.cancel()
        await self._pool.aclose()

    # Public API --------------------------------------------------------------------------------

    async def get(
        self,
        url: str,
        *,
        max_bytes: ByteLimit | None = None,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
    ) -> FetchResult:
        """GET `url` (following checked redirects) and return the whole body, at most `max_bytes` decoded.

        `max_bytes` may be a function of the response media type, decided once the headers arrive.
        """
        limit = self.options.max_page_bytes if max_bytes is None else max_bytes
        return await self._request("GET", url, b"", headers, limit, follow_redirects, truncate=False)

    async def post(
        self,
        url: str,
        content: bytes,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = False,
        *,
        max_bytes: int = 64 * 1024,
    ) -> FetchResult:
        """POST `content` with the same pinning and checks as `get` (for webhook deliveries).

        The response body is read up to `max_bytes` and cut there (`truncated`): a receiver's long answer does
        not turn a delivered request into a failure.
        """
        return await self._request("POST", url, content, headers, max_bytes, follow_redirects, truncate=True)

    async def check(self, url: str | SafeURL) -> tuple[SafeURL, list[IPAddress]]:
        """Parse and check `url`, resolving its host once per fetcher, and pin the answer for connections."""
        parsed = url if isinstance(url, SafeURL) else parse_url(url)
        future = self._resolved.get(parsed.host)
        if future is None:
            future = asyncio.ensure_future(resolve_url(parsed, self.options))
            self._resolved[parsed.host] = future
            future.add_done_callback(_consume_exception)
        _first, ips = await asyncio.shield(future)
        self._backend.pin(parsed.host, ips)
        return parsed, ips

    # Internals ---------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        url: str,
        content: bytes,
        headers: Mapping[str, str] | None,
        max_bytes: ByteLimit,
        follow_redirects: bool,
        *,
        truncate: bool,
    ) -> FetchResult:
        try:
            async with asyncio.timeout(self.options.total_timeout):
                return await self._follow(
                    method, url, content, dict(headers or {}), max_bytes, follow_redirects, truncate=truncate
                )
        except TimeoutError:
            raise ExtractError(
                "timeout", f"fetching {url[:200]} took longer than {self.options.total_timeout:g}s", transient=True
            ) from None

    async def _follow(
        self,
        method: str,
        url: str,
        content: bytes,
        headers: dict[str, str],
        max_bytes: ByteLimit,
        follow_redirects: bool,
        *,
        truncate: bool,
    ) -> FetchResult:
        current, _ips = await self.check(url)
        redirects: list[str] = []
        while True:
            result = await self._send(method, current, content, headers, max_bytes, truncate=truncate)
            location = result.headers.get("location")
            if not (follow_redirects and result.status in REDIRECT_STATUSES and location):
                result.redirects = redirects
                return result
            if len(redirects) >= self.options.max_redirects:
                raise ExtractError("fetch_failed", f"more than {self.options.max_redirects} redirects")
            redirects.append(current.url)
            target = urljoin(current.url, location.strip().replace("\\", "/"))
            nxt, _ips = await self.check(target)
            if result.status == 303 or (result.status in (301, 302) and method == "POST"):
                method, content = ("GET" if method != "HEAD" else method), b""
                headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
            if nxt.origin != current.origin:
                headers = {k: v for k, v in headers.items() if k.lower() not in _SENSITIVE_HEADERS}
            current = nxt

    async def _send(
        self,
        method: str,
        url: SafeURL,
        content: bytes,
        extra: Mapping[str, str],
        max_bytes: ByteLimit,
        *,
        truncate: bool = False,
    ) -> FetchResult:
        headers: dict[str, str] = {
            "Host": url.netloc,
            "User-Agent": self.options.user_agent,
            "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate",
        }
        for k, v in extra.items():
            for existing in [h for h in headers if h.lower() == k.lower()]:
                del headers[existing]
            headers[k] = v
        if method not in ("GET", "HEAD") or content:
            headers["Content-Length"] = str(len(content))
        request_url = httpcore.URL(scheme=url.scheme, host=url.host, port=url.port, target=url.target)
        try:
            async with self._pool.stream(
                method,
                request_url,
                headers=list(headers.items()),
                content=content or None,
                extensions={"timeout": self._timeouts},
            ) as response:
                resp_headers = httpx.Headers(response.headers)
                body, truncated = b"", False
                is_redirect = response.status in REDIRECT_STATUSES and "location" in resp_headers
                if method != "HEAD" and not is_redirect:
                    limit = max_bytes(_media_type(resp_headers)[0]) if callable(max_bytes) else max_bytes
                    body, truncated = await self._read_body(response, resp_headers, limit, url, truncate)
        except ExtractError:
            raise
        except httpcore.TimeoutException as exc:
            raise ExtractError(
                "timeout", f"{url.url[:200]}: {type(exc).__name__} {exc}".strip(), transient=True
            ) from None
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, OSError) as exc:
            raise ExtractError(
                "fetch_failed", f"{url.url[:200]}: {type(exc).__name__} {exc}".strip(), transient=is_transient_error(exc)
            ) from None
        media, charset = _media_type(resp_headers)
        return FetchResult(
            status=response.status,
            url=url.url,
            headers=resp_headers,
            content=body,
            content_type=media,
            charset=charset,
            truncated=truncated,
        )

    async def _read_body(
        self, response: httpcore.Response, headers: httpx.Headers, max_bytes: int, url: SafeURL, truncate: bool
    ) -> tuple[bytes, bool]:
        """The decoded body and whether it was cut at `max_bytes` (only when `truncate`; else too big raises)."""
        too_large = ExtractError("fetch_failed", f"{url.url[:200]}: response larger than {max_bytes} bytes")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes and not truncate:
            raise too_large
        decoder = _decoder_for(headers)
        chunks: list[bytes] = []
        wire = produced = 0
        try:
            async for chunk in response.aiter_stream():
                wire += len(chunk)
                cut = wire > max_bytes
                if cut:
                    if not truncate:
                        raise too_large
                    chunk = chunk[: len(chunk) - (wire - max_bytes)]
                piece = decoder.feed(chunk, max_bytes - produced, truncate=truncate)
                produced += len(piece)
                chunks.append(piece)
                if cut or decoder.overflowed:  # only reachable with `truncate`: stop reading here
                    return b"".join(chunks), True
            chunks.append(decoder.flush(max_bytes - produced, truncate=truncate))
        except _TooLarge:
            raise too_large from None
        except zlib.error as exc:
            raise ExtractError("fetch_failed", f"{url.url[:200]}: bad {decoder.encoding} body: {exc}") from None
        return b"".join(chunks), decoder.overflowed


def is_transient_error(exc: BaseException) -> bool:
    """Whether a network failure may pass on a later attempt, judged by the exception's type (and, for
    resolver errors, its error number), never by its message.

    Transient: timeouts, refused/reset/aborted connections, a peer that broke the protocol mid-response, a
    resolver that did not answer (EAI_AGAIN). Final: a name that does not exist (EAI_NONAME, EAI_NODATA), a
    certificate that does not verify, a scheme or request we will not send, a local protocol error.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # httpcore wraps the OS error: look underneath
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return False
        if isinstance(current, socket.gaierror):
            return current.errno in TRANSIENT_EAI
        current = current.__cause__ or current.__context__
    if isinstance(exc, (TimeoutError, httpcore.TimeoutException)):
        return True
    if isinstance(exc, (httpcore.UnsupportedProtocol, httpcore.LocalProtocolError)):
        return False
    if isinstance(exc, (httpcore.NetworkError, httpcore.RemoteProtocolError)):
        return True
    if isinstance(exc, (ConnectionError, OSError)):
        return True
    return False


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # marks a failed lookup as retrieved; callers see it through `await`
