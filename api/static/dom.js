// Small DOM helpers every part of the page uses: lookup, shown values and the banner.

export const $ = (id) => document.getElementById(id);

/** Show a text; keep the exact value it shows in data-value (what tests and tools read). */
export function setValue(id, raw, text) {
  const el = $(id);
  el.textContent = text;
  if (raw === null || raw === undefined) delete el.dataset.value;
  else el.dataset.value = String(raw);
}

/** The banner above the account: "error", "info" (transient: a retry is under way) or "forbidden". */
export function showBanner(text, kind = "error") {
  const banner = $("banner");
  banner.textContent = text;
  banner.dataset.kind = kind;
  banner.hidden = false;
}

/** Hide the banner (only if it is of that kind, when a kind is given). */
export function hideBanner(kind) {
  const banner = $("banner");
  if (!kind || banner.dataset.kind === kind) banner.hidden = true;
}

/** Whether the account's first answers are still awaited. */
export function loading() {
  return document.body.classList.contains("loading");
}

/** An error under the period selector (null hides it). */
export function rangeError(text) {
  const el = $("range-error");
  el.hidden = text === null;
  if (text !== null) el.textContent = text;
}
