"""Drives the OpenMeter Python SDK 1.0.0b188 (run by its own interpreter; see sdk_common.py)."""

from __future__ import annotations

import sys
from typing import Any

from azure.core.exceptions import HttpResponseError
from openmeter import Client
from sdk_common import error_json, main, rows_of, time_of


def _client(url: str, token: str) -> Client:
    return Client(endpoint=url, headers={"Authorization": f"Bearer {token}"})


class B188:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.client = _client(url, token)

    def ingest_one(self, event: dict[str, Any]) -> None:
        self.client.ingest_events(event)

    def ingest_many(self, events: list[dict[str, Any]]) -> None:
        self.client.ingest_events(events)

    def meters(self) -> list[str]:
        return [meter["slug"] for meter in self.client.list_meters()]

    def query(self, q: dict[str, Any], token: str | None = None) -> Any:
        client = _client(self.url, token) if token else self.client
        if q.get("csv") or q.get("post"):
            return {"unsupported": True}  # 1.0.0b188 has neither a CSV nor a POST query
        params: dict[str, Any] = {
            "from_parameter": time_of(q.get("from")),
            "to": time_of(q.get("to")),
            "window_size": q.get("windowSize"),
            "subject": q.get("subject"),
            "group_by": q.get("groupBy"),
            "filter_group_by": q.get("filterGroupBy"),
        }
        if q.get("windowTimeZone"):
            params["window_time_zone"] = q["windowTimeZone"]
        try:
            return {
                "rows": rows_of(client.query_meter(meter_id_or_slug=q["meter"], **params)["data"])
            }
        except HttpResponseError as error:
            return {"error": error_json(error)}

    def values(self, account: str) -> dict[str, Any]:
        return {"subject": self.client.get_entitlement_value(account, "credits")}

    def portal_create(self, subject: str) -> dict[str, Any]:
        return self.client.create_portal_token({"subject": subject})

    def portal_list(self) -> list[str]:
        return [token["id"] for token in self.client.list_portal_tokens()]

    def portal_invalidate(self, token_id: str) -> None:
        self.client.invalidate_portal_tokens({"id": token_id})

    def portal_query(self, token: str, meter: str) -> Any:
        try:
            return {
                "rows": rows_of(
                    _client(self.url, token).query_portal_meter(meter_slug=meter)["data"]
                )
            }
        except HttpResponseError as error:
            return {"error": error_json(error)}


if __name__ == "__main__":
    sys.exit(main(B188))
