// The API client: JSON reads with a bearer token, the error shape, and the URLs the page uses.

/** An API answer that is not 2xx (status 0: the network failed), with the API's error code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The ApiError of a failed response: `{"error": {code, message}}`, or the status text. */
export async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: keep the status text
  }
  const error = body && body.error ? body.error : {};
  return new ApiError(response.status, error.code || "http_error", error.message || response.statusText);
}

/** GET a JSON answer with a bearer token; throws ApiError (status 0 when unreachable). */
export async function getJson(path, token, fetchImpl = fetch) {
  let response;
  try {
    response = await fetchImpl(path, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, "network", String(error));
  }
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/** "/v1/accounts/{account}/{rest}", the account escaped. */
export function accountPath(account, rest) {
  return `/v1/accounts/${encodeURIComponent(account)}/${rest}`;
}

/** A query string of the parameters that have a value (null, undefined and "" are left out). */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(key, value);
  }
  return search.toString();
}

/** The page's own URL for an account. */
export function billingPage(account) {
  return `/accounts/${encodeURIComponent(account)}/billing`;
}

/** The account a page URL names, or null. */
export function accountOfPage(pathname) {
  const match = /^\/accounts\/([^/]+)\/billing\/?$/.exec(pathname);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return null; // a malformed escape names no account
  }
}
