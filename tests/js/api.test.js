// The API client over a recorded fetch: the bearer header, the error shape, the URLs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { accountOfPage, accountPath, ApiError, billingPage, getJson, query } from "../../api/static/api.js";

function recording(response) {
  const calls = [];
  const fetchImpl = async (url, init) => {
    calls.push({ url, init });
    if (response instanceof Error) throw response;
    return response;
  };
  return { calls, fetchImpl };
}

const json = (status, body, statusText = "") =>
  new Response(JSON.stringify(body), { status, statusText, headers: { "content-type": "application/json" } });

test("getJson sends the bearer token and returns the answer", async () => {
  const { calls, fetchImpl } = recording(json(200, { used: "12.5" }));
  assert.deepEqual(await getJson("/v1/whoami", "tok", fetchImpl), { used: "12.5" });
  assert.equal(calls[0].url, "/v1/whoami");
  assert.equal(calls[0].init.headers.Authorization, "Bearer tok");
  assert.equal(calls[0].init.cache, "no-store");
});

test("a refusal becomes an ApiError with the API's code and message", async () => {
  const { fetchImpl } = recording(json(404, { error: { code: "no_contract", message: "no contract" } }));
  await assert.rejects(getJson("/x", "tok", fetchImpl), (error) => {
    assert.ok(error instanceof ApiError);
    assert.deepEqual([error.status, error.code, error.message], [404, "no_contract", "no contract"]);
    return true;
  });
});

test("a non-JSON failure keeps its status text; an unreachable API is status 0", async () => {
  const html = recording(new Response("<html>", { status: 502, statusText: "Bad Gateway" }));
  await assert.rejects(getJson("/x", "tok", html.fetchImpl), { status: 502, code: "http_error", message: "Bad Gateway" });
  const down = recording(new TypeError("fetch failed"));
  await assert.rejects(getJson("/x", "tok", down.fetchImpl), { status: 0, code: "network" });
});

test("query leaves out missing values; paths escape the account", () => {
  assert.equal(query({ from: "2025-03-01", to: null, tz: undefined, window: "", group_by: "app" }), "from=2025-03-01&group_by=app");
  assert.equal(query({ from: "2025-03-01T00:00:00+09:00" }), "from=2025-03-01T00%3A00%3A00%2B09%3A00");
  assert.equal(accountPath("a/b c", "billing"), "/v1/accounts/a%2Fb%20c/billing");
  assert.equal(billingPage("acme"), "/accounts/acme/billing");
});

test("accountOfPage reads the page URL's account, and no account from a malformed one", () => {
  assert.equal(accountOfPage("/accounts/acme/billing"), "acme");
  assert.equal(accountOfPage("/accounts/ac%2Dme/billing/"), "ac-me");
  assert.equal(accountOfPage("/"), null);
  assert.equal(accountOfPage("/accounts/acme/usage"), null);
  assert.equal(accountOfPage("/accounts/%E0/billing"), null);
});
