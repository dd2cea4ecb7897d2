"""The billing dashboard (Settings > Billing) and the two API routes it signs in with.

* ``GET /`` and ``GET /accounts/{account}/billing``: the same static page (no build step); the
  page reads the account from its URL, or from the token's scope once signed in.
* ``GET /static/...``: the page's script, styles and strings, shipped inside the ``api`` package.
* ``GET /v1/whoami``: what a token is (name, scopes, readable accounts; null for admin).
* ``GET /v1/accounts`` (admin): every account with a contract or with usage.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from api.auth import Authenticated
from api.deps import accounts_with_usage, check_account_id, readable_accounts
from api.errors import ApiError
from api.responses import JSON
from api.services import Services, services

__all__ = ("STATIC_DIR", "router")

STATIC_DIR = FilePath(__file__).resolve().parent.parent / "static"

# The page loads only its own script and styles and talks only to this API; inline script is
# never needed, so the policy forbids it (a stray injected <script> would not run).
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _Assets(StaticFiles):
    """The page's assets, revalidated on every load (ETag) so an upgrade is never half-applied."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        """The file, with ``Cache-Control: no-cache`` and ``nosniff``."""
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


router = APIRouter()
router.mount("/static", _Assets(directory=STATIC_DIR), name="static")


def _page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_PAGE_HEADERS)


@router.get("/", include_in_schema=False)
async def dashboard_home() -> FileResponse:
    """The billing page; the account comes from the signed-in token's scope."""
    return _page()


@router.get("/accounts/{account}/billing", include_in_schema=False)
async def dashboard_account(account: Annotated[str, Path()]) -> FileResponse:
    """The billing page of one account (the page checks the token against it)."""
    check_account_id(account)
    return _page()


@router.get("/v1/whoami", response_class=JSON, summary="What the presented token may do")
async def whoami(principal: Authenticated) -> JSON:
    """The token's name, scopes and readable accounts (``null``: every account, admin)."""
    return JSON(
        {
            "name": principal.name,
            "scopes": sorted(principal.scopes),
            "admin": principal.is_admin,
            "accounts": readable_accounts(principal),
        }
    )


@router.get("/v1/accounts", response_class=JSON, summary="Every account (admin token only)")
async def list_accounts(
    principal: Authenticated, svc: Annotated[Services, Depends(services)]
) -> JSON:
    """Accounts with a contract or with usage, sorted, each saying which of the two it has."""
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "listing accounts needs the admin token")
    with_usage = set(await accounts_with_usage(svc))
    contracts = (await svc.accounts()).contracts
    rows: list[dict[str, Any]] = []
    for account in sorted(with_usage | set(contracts)):
        contract = contracts.get(account)
        rows.append(
            {
                "account_id": account,
                "has_contract": contract is not None,
                "has_usage": account in with_usage,
                "plan": contract.plan if contract else None,
                "time_zone": contract.time_zone if contract else None,
            }
        )
    return JSON({"accounts": rows})
