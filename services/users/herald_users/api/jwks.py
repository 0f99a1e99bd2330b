"""The public signing keys, for every verifier (gateway and services)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from herald_common.auth import jwks_of

router = APIRouter(tags=["keys"])


@router.get("/.well-known/jwks.json")
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    """JWKS with the RS256 public key(s) tokens are signed with (``kid`` = key hash)."""
    # Verifiers cache it; an unknown kid makes them fetch again.
    response.headers["cache-control"] = "public, max-age=300"
    return jwks_of(request.app.state.public_keys)
