// The signed-in token and the accounts it may pick. The token lives in sessionStorage (this tab,
// this browser session) and, for a portal link, arrives in the URL fragment (never sent to a
// server). Owned here: written by open() and close() only.
import { getJson } from "./api.js";

const TOKEN_KEY = "creditflow.token";

let token = null;
let choices = [];

/** The bearer token, or null when signed out. */
export function bearer() {
  return token;
}

/** The accounts this token may pick (every account, for admin). */
export function accountChoices() {
  return choices;
}

/** GET a JSON answer with the session's token. */
export function get(path) {
  return getJson(path, token);
}

/** Check a token (whoami) and load its accounts; throws ApiError and stays signed out if refused. */
export async function open(candidate) {
  const who = await getJson("/v1/whoami", candidate);
  let readable = who.accounts;
  if (readable === null) {
    // admin: every account with a contract or usage
    try {
      readable = (await getJson("/v1/accounts", candidate)).accounts.map((row) => row.account_id);
    } catch {
      readable = [];
    }
  }
  token = candidate;
  choices = readable;
  sessionStorage.setItem(TOKEN_KEY, candidate);
}

/** Forget the token. */
export function close() {
  token = null;
  choices = [];
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The token to start with: a portal link's #token=..., removed from the address bar, or this tab's. */
export function startToken() {
  const fragment = new URLSearchParams(window.location.hash.slice(1)).get("token");
  if (fragment) history.replaceState(history.state, "", window.location.pathname + window.location.search);
  return fragment || sessionStorage.getItem(TOKEN_KEY);
}
