"""HTTP routes of the users service (see ARCHITECTURE.md, "users (4001)")."""

from herald_users.api.auth import router as auth_router
from herald_users.api.jwks import router as jwks_router
from herald_users.api.users import router as users_router

__all__ = ["auth_router", "jwks_router", "users_router"]
