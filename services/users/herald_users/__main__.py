"""Run the users service: ``python -m herald_users`` (127.0.0.1:4001 unless configured)."""

from __future__ import annotations

import uvicorn
from pydantic import ValidationError

from herald_users.config import UsersSettings
from herald_users.keys import SigningKeyError
from herald_users.main import create_app


def main() -> None:
    try:
        settings = UsersSettings()
        app = create_app(settings)
    except ValidationError as exc:
        # One line per problem, without the input values (they may hold secrets).
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise SystemExit(f"herald-users: cannot start: {reasons}") from None
    except SigningKeyError as exc:
        raise SystemExit(f"herald-users: cannot start: {exc}") from None
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # herald_common.logs configures logging
        proxy_headers=False,  # the client address comes from X-Forwarded-For explicitly
    )


if __name__ == "__main__":
    main()
