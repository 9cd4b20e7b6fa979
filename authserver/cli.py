"""authserver serve | migrate | create-admin | rotate-keys | mds-refresh"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from authserver.settings import Settings, SettingsError

log = logging.getLogger("authserver")


def _settings(args: argparse.Namespace) -> Settings:
    if getattr(args, "config", None):
        os.environ["AUTHSERVER_CONFIG"] = str(args.config)
    return Settings.load()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from authserver.store import migrate

    settings = _settings(args)
    settings.keyring()  # create development keys before workers fork, so they share one
    if settings.is_sqlite:
        if migrate.is_empty_or_behind(settings.database_url):
            log.info("migrating the SQLite database to %s", migrate.head_revision())
            migrate.upgrade(settings.database_url)
    elif migrate.is_empty_or_behind(settings.database_url):
        log.warning("the database is not at the newest migration; run `authserver migrate` (/ready says 503)")
    uvicorn.run("authserver.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=settings.log_level.lower(), proxy_headers=False,
                server_header=False)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from authserver.store import migrate

    settings = _settings(args)
    migrate.upgrade(settings.database_url, args.revision)
    print(f"database at {asyncio.run(migrate.database_revision(settings.database_url))}")
    return 0


def cmd_create_admin(args: argparse.Namespace) -> int:
    from authserver.policy.risk import UNKNOWN_CLIENT
    from authserver.wiring import build_services

    settings = _settings(args)
    password = sys.stdin.readline().rstrip("\r\n") if not sys.stdin.isatty() else __import__("getpass").getpass()
    if not password:
        print("no password given on standard input", file=sys.stderr)
        return 2

    async def run() -> int:
        services = build_services(settings)
        try:
            account, _ = await services.accounts.signup(username=args.username, display_name=None, email=args.email,
                                                        password=password, client=UNKNOWN_CLIENT, role="admin")
        finally:
            await services.ctx.db.dispose()
        print(f"created admin {account.username} ({account.id})")
        return 0

    return asyncio.run(run())


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    from authserver.crypto import KeyRing, generate_key, load_or_create_key_file, write_key_file
    from authserver.store.rotation import reseal_all

    settings = _settings(args)
    if settings.secret_keys:
        ring = KeyRing(__import__("authserver.crypto", fromlist=["parse_keys"]).parse_keys(settings.secret_keys))
        print(f"re-sealing under the first configured key {ring.current.kid!r} (AUTHSERVER_SECRET_KEYS)")
    else:
        path = Path(settings.keys_file)
        keys = load_or_create_key_file(path)
        keys = [generate_key(), *keys]
        write_key_file(path, keys)
        ring = KeyRing(keys)
        print(f"generated key {ring.current.kid!r} into {path}")
    count = asyncio.run(reseal_all(settings.database_url, ring))
    print(f"re-sealed {count} values; keys other than {ring.current.kid!r} may now be removed")
    return 0


def cmd_mds_refresh(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from authserver.metadata import fetch_blob

    settings = _settings(args)
    if not (settings.mds_url and settings.mds_blob_path and settings.mds_root_cert):
        print("set AUTHSERVER_MDS_URL, AUTHSERVER_MDS_BLOB_PATH and AUTHSERVER_MDS_ROOT_CERT", file=sys.stderr)
        return 2
    store = fetch_blob(settings.mds_url, Path(settings.mds_blob_path), root_cert_path=Path(settings.mds_root_cert),
                       now=datetime.now(UTC))
    print(f"metadata BLOB no. {store.no} saved to {settings.mds_blob_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authserver", description=__doc__)
    parser.add_argument("--config", help="TOML settings file (environment variables win)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)
    mig = sub.add_parser("migrate", help="upgrade the database schema")
    mig.add_argument("revision", nargs="?", default="head")
    mig.set_defaults(func=cmd_migrate)
    admin = sub.add_parser("create-admin", help="create an admin; the password is read from standard input")
    admin.add_argument("username")
    admin.add_argument("--email")
    admin.set_defaults(func=cmd_create_admin)
    rot = sub.add_parser("rotate-keys", help="re-seal every secret under the newest key")
    rot.set_defaults(func=cmd_rotate_keys)
    mds = sub.add_parser("mds-refresh", help="download and verify the FIDO metadata BLOB")
    mds.set_defaults(func=cmd_mds_refresh)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("AUTHSERVER_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a CLI user gets one line, not a traceback
        from authserver.metadata import MetadataError

        if isinstance(exc, MetadataError):
            print(f"metadata refused: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    raise SystemExit(main())
