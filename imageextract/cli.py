"""The `imageextract` command: serve | worker | migrate | admin | extract."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

from imageextract import db, logs
from imageextract.app import create_app
from imageextract.config import Settings
from imageextract.errors import DomainError
from imageextract.extract.cli import main as extract_main
from imageextract.graphql_app import sdl
from imageextract.models import Account, User
from imageextract.runtime import settle_heap
from imageextract.services.admin import create_account_with_key, grant_credits, issue_owner_key, set_plan
from imageextract.tasks.worker import run_worker


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port

    logs.configure(settings.log_level)
    # Take the port before anything else: a start that cannot serve must not create (and print the key of)
    # a demo account nobody can reach. uvicorn serves on this very socket, so nothing can take it meanwhile.
    try:
        sock = _listen(settings.host, settings.port)
    except OSError as exc:
        print(f"imageextract: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}. "
              f"Stop what uses it or pick another port (--port or IMAGEEXTRACT_PORT).", file=sys.stderr, flush=True)
        return 1
    try:
        asyncio.run(_prepare(settings, migrate=not args.no_migrate))
        server = http_server(create_app(settings), settings)
        settle_heap()
        serve_on(server, sock)
    finally:
        sock.close()
    return 0


def http_server(app: Any, settings: Settings) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, log_config=None, log_level=settings.log_level.lower(), access_log=False,
                                         lifespan="on", ws="websockets-sansio" if _has_sansio() else "auto"))


def serve_on(server: uvicorn.Server, sock: socket.socket) -> None:
    """Serve on a socket already listening. The socket object itself, not `fd=`: uvicorn wraps a bare fd as
    AF_UNIX, and then neither asyncio nor uvloop sets TCP_NODELAY on accepted connections; Nagle then holds a
    response's body behind its headers until the client's delayed ACK, about 40 ms, on every reused connection
    (and each SSE event behind the previous one)."""
    server.run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _has_sansio() -> bool:
    try:
        import uvicorn.protocols.websockets.websockets_sansio_impl  # noqa: F401
    except ImportError:
        return False
    return True


DEMO_EMAIL = "demo@imageextract.local"


def _print_key(settings: Settings, heading: str, key: str) -> None:
    print("=" * 72, flush=True)
    print(heading, flush=True)
    print(f"  {key}", flush=True)
    print(f"  curl -H 'Authorization: Bearer {key}' http://{settings.host}:{settings.port}/api/v1/account",
          flush=True)
    print("=" * 72, flush=True)


async def _prepare(settings: Settings, *, migrate: bool) -> None:
    """Migrate, and on the very first start create a demo account and print its key; on later starts say
    how to get a key (only a hash is stored, so the old key cannot be shown again)."""

    if migrate:
        await db.migrate(settings)
    if not settings.create_demo_account:
        return
    await db.init_db(settings)
    try:
        if not await Account.exists():
            created = await create_account_with_key(
                name="Demo", email=DEMO_EMAIL, password=None, plan="pro", credits=None,
                retention_days=settings.default_retention_days,
            )
            _print_key(settings, "Demo account created. Its API key is shown this once:", created["api_key"])
        elif await User.filter(email=DEMO_EMAIL).exists():
            print(f"Demo account {DEMO_EMAIL} exists; its first key was printed on the first start. For a new "
                  f"key: imageextract admin demo-key", flush=True)
    finally:
        await db.close_db()


def _admin_demo_key(args: argparse.Namespace, settings: Settings) -> int:
    """Issue a new API key for the demo account's owner (keys are stored hashed: old ones cannot be shown)."""

    async def run() -> str | None:
        await db.init_db(settings)
        try:
            return await issue_owner_key(email=DEMO_EMAIL, label="demo-key")
        finally:
            await db.close_db()

    key = asyncio.run(run())
    if key is None:
        print(f"imageextract: no demo account ({DEMO_EMAIL}); start the server once or use "
              f"'imageextract admin create-account'", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"email": DEMO_EMAIL, "api_key": key}))
    else:
        _print_key(settings, "A new API key for the demo account (shown this once):", key)
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(db.migrate(settings))
    print("migrations applied", flush=True)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    return run_worker(settings, processes=args.processes, threads=args.threads)


def _run_admin(args: argparse.Namespace, settings: Settings, action: Callable[[], Awaitable[dict[str, Any]]]) -> int:
    """Run one operator action against the database: its result on stdout (JSON with --json), a domain
    error as the JSON envelope on stderr and exit code 1."""

    async def run() -> dict[str, Any]:
        await db.init_db(settings)
        try:
            return await action()
        finally:
            await db.close_db()

    try:
        result = asyncio.run(run())
    except DomainError as exc:
        print(json.dumps({"error": {"code": exc.code, "message": exc.message, "details": exc.details}}),
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


def _admin_create_account(args: argparse.Namespace, settings: Settings) -> int:
    return _run_admin(args, settings, lambda: create_account_with_key(
        name=args.name, email=args.email, password=args.password, plan=args.plan, credits=args.credits,
        retention_days=settings.default_retention_days))


def _admin_grant_credits(args: argparse.Namespace, settings: Settings) -> int:
    return _run_admin(args, settings, lambda: grant_credits(
        account_id=args.account, credits=args.credits, reason=args.reason))


def _admin_set_plan(args: argparse.Namespace, settings: Settings) -> int:
    return _run_admin(args, settings, lambda: set_plan(account_id=args.account, plan=args.plan,
                                                       credits=args.credits))


def _export_schema(args: argparse.Namespace, settings: Settings) -> int:
    text = sdl()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imageextract", description="ImageExtract service and tools")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (with an embedded worker on the in-process broker)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-migrate", action="store_true", help="skip applying migrations at start")
    serve.set_defaults(func=_serve)

    worker = sub.add_parser("worker", help="run Dramatiq worker processes (Redis broker)")
    worker.add_argument("--processes", type=int)
    worker.add_argument("--threads", type=int)
    worker.set_defaults(func=_worker)

    mig = sub.add_parser("migrate", help="apply database migrations")
    mig.set_defaults(func=_migrate)

    admin = sub.add_parser("admin", help="administrative commands")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    ca = admin_sub.add_parser("create-account", help="create an account with a Default project and an API key")
    ca.add_argument("--name", required=True)
    ca.add_argument("--email", required=True)
    ca.add_argument("--password")
    ca.add_argument("--plan", default="free", choices=["free", "starter", "pro", "scale", "agency"])
    ca.add_argument("--credits", type=int)
    ca.add_argument("--json", action="store_true")
    ca.set_defaults(func=_admin_create_account)
    gc = admin_sub.add_parser("grant-credits", help="add credits to an account (one ledger entry)")
    gc.add_argument("--account", required=True, help="account id (acc_...)")
    gc.add_argument("--credits", type=int, required=True)
    gc.add_argument("--reason", required=True, help="why: kept as the ledger entry's note")
    gc.add_argument("--json", action="store_true")
    gc.set_defaults(func=_admin_grant_credits)
    sp = admin_sub.add_parser("set-plan", help="put an account on a plan and grant its included credits")
    sp.add_argument("--account", required=True, help="account id (acc_...)")
    sp.add_argument("--plan", required=True, choices=["free", "starter", "pro", "scale", "agency"])
    sp.add_argument("--credits", type=int, help="credits to grant instead of the plan's credits_included")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=_admin_set_plan)

    dk = admin_sub.add_parser("demo-key", help="issue a new API key for the demo account's owner")
    dk.add_argument("--json", action="store_true")
    dk.set_defaults(func=_admin_demo_key)

    es = sub.add_parser("export-schema", help="write the GraphQL SDL (the committed schema.graphql)")
    es.add_argument("--output", "-o", default="schema.graphql", help="file to write, or - for stdout")
    es.set_defaults(func=_export_schema)

    ex = sub.add_parser("extract", help="extract images from URLs or local files (no server needed)",
                        add_help=False)
    ex.add_argument("rest", nargs=argparse.REMAINDER)
    ex.set_defaults(func=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "extract":
        return extract_main(argv[1:])
    args = build_parser().parse_args(argv)
    settings = Settings()
    return int(args.func(args, settings) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
