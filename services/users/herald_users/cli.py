"""``herald-users``: operator commands of the users service.

* ``create-admin --email E [--name N] [--password-stdin]``: create an admin account or
  grant the admin role (and set the password) to an existing one. Reads the password
  from stdin or asks for it; it never goes on the command line. The
  ``user.registered`` event is staged in the database and published by the running
  service's outbox relay.
* ``generate-key [--out FILE]``: a new RSA private key (PEM) for
  ``HERALD_USERS_PRIVATE_KEY_PEM`` / ``_PRIVATE_KEY_FILE``.
* ``jwks``: the JWKS the configured key yields.
* ``serve``: run the service (same as ``python -m herald_users``).

Configuration comes from the usual ``HERALD_USERS_*`` environment variables.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from herald_common.auth import generate_private_key_pem, jwks_of, public_pem_of
from herald_common.db import connect_db, disconnect_db, run_db
from herald_common.errors import HeraldError

from herald_users.config import UsersSettings
from herald_users.credentials import Passwords
from herald_users.domain import Accounts
from herald_users.keys import SigningKeyError, load_private_key
from herald_users.models import ensure_indexes


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("admin password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("error: the passwords differ")
    return first


async def create_admin(settings: UsersSettings, email: str, password: str, name: str) -> str:
    """Create or promote the admin; returns its user id."""
    await run_db(connect_db, settings)
    try:
        await run_db(ensure_indexes)
        passwords = Passwords(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        user = await Accounts(passwords).ensure_admin(email, password, name)
        return str(user.id)
    finally:
        disconnect_db()


def main(argv: Sequence[str] | None = None, settings: UsersSettings | None = None) -> int:
    parser = argparse.ArgumentParser(prog="herald-users", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    admin = sub.add_parser("create-admin", help="create an admin or grant the admin role")
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", default="Herald admin")
    admin.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    key = sub.add_parser("generate-key", help="print (or write) a new RSA signing key")
    key.add_argument("--out", type=Path, help="write to this file (mode 600) instead of stdout")
    sub.add_parser("jwks", help="print the JWKS of the configured signing key")
    sub.add_parser("serve", help="run the service")
    args = parser.parse_args(argv)

    try:
        if args.command == "generate-key":
            pem = generate_private_key_pem()
            if args.out:
                fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(pem)
                print(f"wrote {args.out}")
            else:
                sys.stdout.write(pem)
            return 0
        if args.command == "serve":
            from herald_users.__main__ import main as serve

            serve()
            return 0
        settings = settings or UsersSettings()
        if args.command == "jwks":
            print(json.dumps(jwks_of([public_pem_of(load_private_key(settings))]), indent=2))
            return 0
        password = _read_password(args.password_stdin)
        user_id = asyncio.run(create_admin(settings, args.email, password, args.name))
        print(f"admin ready: {user_id}")
        return 0
    except HeraldError as exc:
        where = f" ({exc.field})" if exc.field else ""
        print(f"error{where}: {exc.message}", file=sys.stderr)
        return 2
    except (SigningKeyError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
