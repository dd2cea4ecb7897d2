"""Portal tokens (create, list, invalidate: admin token) and the portal meter query.

A platform creates a token for one of its customers and hands it to that customer's browser:
the token reads that one account's meters through ``/api/v1/portal/meters/{slug}/query``, and
the billing page (``/accounts/{a}/billing#token=...``) when it names every meter. Storage and
revocation: :mod:`api.openmeter.tokens`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from api.auth import Authenticated, Principal
from api.bodies import parse_exact_json, read_body
from api.openmeter.meters import METERS, QueryError, parse_query_string
from api.openmeter.problems import Problem, ProblemRoute
from api.openmeter.queries import answer_query, meter_or_404
from api.openmeter.tokens import PortalToken, new_token, record_key, token_json
from api.responses import JSON
from api.services import Services, services
from config.accounts import publish_config
from config.clock import now_ms
from core.localtime import quoted

__all__ = ("router",)

router = APIRouter(route_class=ProblemRoute, tags=["OpenMeter"])

_MAX_BODY = 16 * 1024


def _admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Problem(403, "forbidden", "portal tokens are managed with the admin token")


async def _body(request: Request) -> dict[str, Any]:
    raw = await read_body(request, _MAX_BODY)
    try:
        body = parse_exact_json(raw or b"{}")
    except ValueError:
        raise Problem(400, "invalid_request", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Problem(400, "invalid_request", "the body must be a JSON object")
    return body


async def _publish(svc: Services, records: list[tuple[bytes, bytes | None]]) -> None:
    """Write token records and wait until this process has applied them (read-your-writes)."""
    accounts = await svc.accounts()
    await publish_config(svc.settings, records)
    expected = {key.decode().partition(":")[2]: value is not None for key, value in records}
    await accounts.wait_until(
        lambda: all((svc.portal.get(i) is not None) == alive for i, alive in expected.items())
    )


@router.post("/api/v1/portal/tokens", response_class=JSON, summary="Create a portal token")
async def create_token(
    request: Request, principal: Authenticated, svc: Annotated[Services, Depends(services)]
) -> JSON:
    """A token for ``subject`` and ``allowedMeterSlugs`` (default all); shown only here."""
    _admin(principal)
    body = await _body(request)
    subject = body.get("subject")
    meters = body.get("allowedMeterSlugs")
    if not isinstance(subject, str):
        raise Problem(400, "invalid_request", "subject (the account) is required")
    if meters is None:
        meters = []  # every meter
    elif not isinstance(meters, list) or not meters or not all(m in METERS for m in meters):
        raise Problem(
            400,
            "invalid_request",
            "allowedMeterSlugs: a non-empty list of credits and calls (omit it for both)",
        )
    now = now_ms()
    try:
        record, token = new_token(
            subject, tuple(dict.fromkeys(meters)), svc.settings.portal_token_ttl_seconds, now
        )
    except ValueError:
        raise Problem(
            400, "invalid_account", f"{quoted(subject)} is not a valid account id"
        ) from None
    await svc.accounts()
    records = svc.portal.records()
    expired = [r for r in records if r.expired(now)]
    if len(records) - len(expired) >= svc.settings.portal_max_tokens:
        raise Problem(
            409,
            "too_many_tokens",
            f"{svc.settings.portal_max_tokens} portal tokens are alive; invalidate some first",
        )
    # Expired tokens are cleaned up here, so the topic never holds more than the limit plus
    # those that expired since the last creation.
    await _publish(
        svc,
        [(record_key(record.id), record.model_dump_json().encode())]
        + [(record_key(r.id), None) for r in expired],
    )
    return JSON(token_json(record, now, token))


@router.get("/api/v1/portal/tokens", response_class=JSON, summary="List portal tokens")
async def list_tokens(
    principal: Authenticated,
    svc: Annotated[Services, Depends(services)],
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> JSON:
    """The newest tokens first, expired ones flagged; never the token itself."""
    _admin(principal)
    await svc.accounts()
    now = now_ms()
    return JSON([token_json(r, now) for r in svc.portal.records()[:limit]])


@router.post(
    "/api/v1/portal/tokens/invalidate", status_code=204, summary="Invalidate portal tokens"
)
async def invalidate_tokens(
    request: Request, principal: Authenticated, svc: Annotated[Services, Depends(services)]
) -> Response:
    """Revoke the token ``id``, or every token of ``subject``; effective on every process."""
    _admin(principal)
    body = await _body(request)
    token_id, subject = body.get("id"), body.get("subject")
    if token_id is None and subject is None:
        raise Problem(400, "invalid_request", "name the token's id or a subject")
    await svc.accounts()
    doomed: list[PortalToken] = [
        r
        for r in svc.portal.records()
        if (token_id is None or r.id == token_id) and (subject is None or r.subject == subject)
    ]
    if doomed:
        await _publish(svc, [(record_key(r.id), None) for r in doomed])
    return Response(status_code=204)


@router.get(
    "/api/v1/portal/meters/{meter}/query",
    summary="Query a meter with a portal token (its account only)",
)
async def portal_query(
    request: Request,
    meter: str,
    principal: Authenticated,
    svc: Annotated[Services, Depends(services)],
) -> Response:
    """The meter query of the token's account; a ``subject`` parameter is ignored."""
    subjects = [s.partition(":")[2] for s in principal.scopes if s.startswith("portal:")]
    if len(subjects) != 1:
        raise Problem(403, "forbidden", "this endpoint takes a portal token")
    found = meter_or_404(meter)
    if f"meter:{found.slug}" not in principal.scopes:
        raise Problem(403, "forbidden", f"this portal token does not allow meter {found.slug!r}")
    items = [(k, v) for k, v in request.query_params.multi_items() if k != "subject"]
    try:
        query = parse_query_string(found, items)
    except QueryError as error:
        raise Problem(400, "invalid_query", str(error)) from None
    # As OpenMeter: the token's subject is the filter (and so a grouping), read with a
    # principal that may read exactly that account.
    reader = Principal(principal.name, frozenset({f"read:{subjects[0]}"}))
    group_by = tuple(dict.fromkeys((*query.group_by, "subject")))
    scoped = replace(query, subjects=(subjects[0],), group_by=group_by)
    return await answer_query(request, svc, reader, scoped)
