// The account on show, its load generation and where its load errors go. Owned here, written
// only by the page wiring (app.js): every answer that arrives after the account changed (or
// after sign-out) is dropped by checking the ticket its request was started with.

let account = null;
let generation = 0;
let onError = (error) => {
  throw error;
};

/** The account on show (null before the first load). */
export function current() {
  return account;
}

/** Show another account: older loads' answers are dropped from now on. */
export function begin(next) {
  account = next;
  generation += 1;
  return ticket();
}

/** Drop every load in flight (sign-out). */
export function invalidate() {
  generation += 1;
}

/** A check, true until the next begin() or invalidate(), to run before using an answer. */
export function ticket() {
  const mine = generation;
  return () => mine === generation;
}

/** Where the page's API errors go (app.js: sign out, a banner, or a retry). */
export function handleErrorsWith(handler) {
  onError = handler;
}

/** Report an API error of the account on show. */
export function fail(error) {
  onError(error);
}
