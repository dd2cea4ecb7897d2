"""Drives the OpenMeter Python SDK 1.0.0b236 (run by its own interpreter; see sdk_common.py).

Reads a step from stdin, calls the SDK exactly as an application would, prints JSON results.
"""

from __future__ import annotations

import sys
from typing import Any

from corehttp.exceptions import HttpResponseError
from openmeter import Client
from sdk_common import error_json, main, rows_of, time_of


class B236:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.client = Client(endpoint=url, token=token)

    def ingest_one(self, event: dict[str, Any]) -> None:
        self.client.events.ingest_event(event)

    def ingest_many(self, events: list[dict[str, Any]]) -> None:
        self.client.events.ingest_events(events)

    def meters(self) -> list[str]:
        return [meter["slug"] for meter in self.client.meters.list()]

    def query(self, q: dict[str, Any], token: str | None = None) -> Any:
        client = Client(endpoint=self.url, token=token) if token else self.client
        params = {
            "from_parameter": time_of(q.get("from")),
            "to": time_of(q.get("to")),
            "window_size": q.get("windowSize"),
            "window_time_zone": q.get("windowTimeZone"),
            "subject": q.get("subject"),
            "group_by": q.get("groupBy"),
            "filter_group_by": q.get("filterGroupBy"),
        }
        try:
            if q.get("csv"):
                return {"csv": client.meters.query_csv(q["meter"], **params)}
            if q.get("post"):
                body = {k: v for k, v in q.items() if k not in ("meter", "post", "id")}
                if "filterGroupBy" in body:
                    body["filterGroupBy"] = {k: [v] for k, v in body["filterGroupBy"].items()}
                return {"rows": rows_of(client.meters.query(q["meter"], body)["data"])}
            return {"rows": rows_of(client.meters.query_json(q["meter"], **params)["data"])}
        except HttpResponseError as error:
            return {"error": error_json(error)}

    def values(self, account: str) -> dict[str, Any]:
        return {
            "v2": dict(
                self.client.customer_entitlement_v2.get_customer_entitlement_value(
                    account, "credits"
                )
            ),
            "v1": dict(
                self.client.customer_entitlement.get_customer_entitlement_value(
                    account, feature_key="credits"
                )
            ),
            "access": dict(
                self.client.customer.get_customer_access(account)["entitlements"]["credits"]
            ),
        }

    def portal_create(self, subject: str) -> dict[str, Any]:
        return dict(self.client.portal.portal_tokens.create({"subject": subject}))

    def portal_list(self) -> list[str]:
        return [token["id"] for token in self.client.portal.portal_tokens.list()]

    def portal_invalidate(self, token_id: str) -> None:
        self.client.portal.portal_tokens.invalidate({"id": token_id})

    def portal_query(self, token: str, meter: str) -> Any:
        portal = Client(endpoint=self.url, token=token)
        try:
            return {"rows": rows_of(portal.portal.portal_meters.query_json(meter)["data"])}
        except HttpResponseError as error:
            return {"error": error_json(error)}


if __name__ == "__main__":
    sys.exit(main(B236))
