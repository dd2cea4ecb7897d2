// The page's live usage streams and its "synced N s ago" label. Owned here: the open streams
// (by name: "period", "range") with whether each is receiving, and the freshness of the last
// answer (as_of, lag). Billing and range open their stream here and report each answer.
import * as account from "./account.js";
import { $, hideBanner, loading, showBanner } from "./dom.js";
import { formatInt } from "./format.js";
import { t } from "./i18n.js";
import * as session from "./session.js";
import { openStream } from "./sse.js";

const streams = new Map(); // name -> {handle, live}
let asOf = null;
let lag = 0;

/** Follow a usage stream under a name, replacing the one of that name. */
export function open(name, url, onEvent, onError) {
  close(name);
  const entry = { handle: null, live: false };
  entry.handle = openStream({
    url,
    token: session.bearer(),
    onEvent,
    onError,
    onLive: (live) => {
      entry.live = live;
      renderSynced();
    },
    onUnavailable: () => showBanner(t("errRebuilding"), "info"),
  });
  streams.set(name, entry);
}

/** Stop a stream. */
export function close(name) {
  const entry = streams.get(name);
  if (entry) entry.handle.close();
  streams.delete(name);
}

/** Stop every stream (another account, sign-out, access denied). */
export function closeAll() {
  for (const name of [...streams.keys()]) close(name);
}

/** Record an answer's freshness: as_of and lag, and the rebuild banner is over. */
export function fresh(answer) {
  asOf = answer.as_of;
  lag = answer.lag ?? 0;
  hideBanner("info");
  renderSynced();
}

/** Forget the freshness (a new account's answers are not in yet). */
export function reset() {
  asOf = null;
  lag = 0;
}

/** The label: "synced N s ago · M pending", "reconnecting…" while a stream is down. */
export function renderSynced() {
  const el = $("synced");
  const live = [...streams.values()].every((entry) => entry.live);
  el.classList.toggle("live", live && asOf !== null);
  if (!account.current() || loading()) {
    el.textContent = "";
    return;
  }
  if (streams.size && !live) {
    el.textContent = t("reconnecting");
    return;
  }
  if (!asOf) {
    el.textContent = t("syncedUnknown");
    delete el.dataset.asOf;
    return;
  }
  el.dataset.asOf = asOf;
  el.title = asOf;
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(asOf)) / 1000));
  let text = seconds < 2 ? t("syncedJustNow") : t("syncedAgo", { n: seconds });
  if (lag > 0) text += ` · ${t("pending", { n: formatInt(lag) })}`;
  el.textContent = text;
}
