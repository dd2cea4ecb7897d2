"""Admin API: account contracts and webhook endpoints (``admin`` token only).

Changes are published to the config topic; every worker and API process picks them up within
a fraction of a second, without a restart. The answer comes once this process has seen the
change, so a following read reflects it. Bodies are read exactly: a JSON-number rate becomes a
Decimal from its literal text, never a float.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from api.auth import Authenticated, Principal
from api.bodies import read_json
from api.deps import check_account
from api.errors import ApiError
from api.responses import JSON
from api.services import Services, services
from config.accounts import Endpoint, Webhooks, contract_key, publish_config, webhooks_key
from config.contracts import Contract
from config.targets import TargetPolicy

__all__ = ("router",)

router = APIRouter()

# Admin bodies are small documents (a contract, at most ten endpoints).
_ADMIN_BODY_BYTES = 64 * 1024


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _object_body(request: Request) -> dict[str, Any]:
    body = await read_json(request, _ADMIN_BODY_BYTES)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    return body


def _admin(account: str, principal: Principal) -> None:
    check_account(account, principal)
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "contracts and webhooks need the admin token")


def _problems(error: ValidationError | ValueError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'body'}: {item['msg']}"
            for item in error.errors()
        )
    return str(error)


@router.get("/v1/accounts/{account}/contract", response_class=JSON, summary="An account's contract")
async def get_contract(
    account: str, principal: Authenticated, svc: Annotated[Services, Depends(services)]
) -> JSON:
    """The current contract (with its version)."""
    _admin(account, principal)
    contract = (await svc.accounts()).contracts.get(account)
    if contract is None:
        raise ApiError(404, "no_contract", f"account {account!r} has no contract")
    return JSON({"account_id": account, **contract.model_dump(mode="json")})


@router.put(
    "/v1/accounts/{account}/contract",
    response_class=JSON,
    summary="Create or replace a contract",
    openapi_extra=_json_body(Contract.model_json_schema()),
)
async def put_contract(
    account: str,
    request: Request,
    principal: Authenticated,
    svc: Annotated[Services, Depends(services)],
) -> JSON:
    """Validate (plan maximum, bounded rate, known currency and zone); publish a new version."""
    _admin(account, principal)
    body = await _object_body(request)
    accounts = await svc.accounts()
    body.pop("version", None)
    try:
        contract = accounts.validate(account, body)
    except (ValidationError, ValueError) as error:
        raise ApiError(400, "invalid_contract", _problems(error)) from None
    await publish_config(
        svc.settings, [(contract_key(account), contract.model_dump_json().encode())]
    )
    await accounts.wait_until(
        lambda: (
            (seen := accounts.contracts.get(account)) is not None
            and seen.version >= contract.version
        )
    )
    return JSON({"account_id": account, **contract.model_dump(mode="json")})


@router.get("/v1/accounts/{account}/webhooks", response_class=JSON, summary="Webhook endpoints")
async def get_webhooks(
    account: str, principal: Authenticated, svc: Annotated[Services, Depends(services)]
) -> JSON:
    """The account's endpoints (secrets shown by their last four characters)."""
    _admin(account, principal)
    hooks = (await svc.accounts()).webhooks.get(account, Webhooks())
    endpoints = [{"id": e.id, "url": e.url, "secret": "…" + e.secret[-4:]} for e in hooks.endpoints]
    return JSON({"account_id": account, "endpoints": endpoints})


@router.put(
    "/v1/accounts/{account}/webhooks",
    response_class=JSON,
    summary="Replace webhook endpoints",
    openapi_extra=_json_body(Webhooks.model_json_schema()),
)
async def put_webhooks(
    account: str,
    request: Request,
    principal: Authenticated,
    svc: Annotated[Services, Depends(services)],
) -> JSON:
    """Set the endpoints; a missing secret is generated and returned once, here.

    An endpoint whose host is (or resolves only to) a private, loopback or link-local address
    is refused unless ``CREDITFLOW_WEBHOOK_ALLOWED_NETWORKS`` allows it; deliveries check the
    addresses again when they connect.
    """
    _admin(account, principal)
    body = await _object_body(request)
    accounts = await svc.accounts()
    raw = body.get("endpoints")
    if not isinstance(raw, list):
        raise ApiError(400, "invalid_webhooks", 'body must be {"endpoints": [{"id", "url"}]}')
    try:
        endpoints = [
            Endpoint.model_validate({"secret": secrets.token_urlsafe(32), **item}) for item in raw
        ]
        hooks = Webhooks(endpoints=endpoints)
    except (ValidationError, TypeError) as error:
        raise ApiError(400, "invalid_webhooks", str(error)) from None
    policy = TargetPolicy(svc.settings.webhook_networks)
    for endpoint in endpoints:
        refusal = await policy.resolved_refusal(endpoint.url)
        if refusal is not None:
            raise ApiError(400, "invalid_webhooks", f"endpoint {endpoint.id}: {refusal}")
    await publish_config(svc.settings, [(webhooks_key(account), hooks.model_dump_json().encode())])
    await accounts.wait_until(lambda: accounts.webhooks.get(account) == hooks)
    return JSON({"account_id": account, **hooks.model_dump(mode="json")})
