// The billing page (Settings > Billing): plan, usage of the period, a period selector, a chart
// and per-app details, kept live by the usage stream. No build step, no dependencies.
//
// Money rule: credits and amounts arrive as exact decimal strings and are shown as such (only
// regrouped with thousands separators). Floats appear only for geometry (bar heights, widths)
// and for each app's share, which is a ratio; sorting by credits compares exact integers.
import { STRINGS } from "./i18n.js";

const TOKEN_KEY = "creditflow.token";
const LANG_KEY = "creditflow.lang";
const WATCHDOG_MS = 15000; // the stream re-sends at least every 5 s; silence this long = dead

const $ = (id) => document.getElementById(id);

const state = {
  lang: "en",
  token: null,
  whoami: null,
  choices: [], // accounts this token may pick
  account: null,
  gen: 0, // bumped on every account load; stale answers of an older load are dropped
  billing: null, // the current period's billing answer (null: no contract)
  previous: undefined, // the previous period's billing answer, fetched on demand
  tz: null,
  range: null, // {preset, from, to, fromDate, toDate, window}
  usage: null, // the last usage answer of the selected range
  asOf: null,
  lag: 0,
  live: { period: false, range: false },
  streams: {},
  sort: { key: "credits", dir: -1 },
  billingInFlight: false,
  billingDirty: false,
};

// ---------------------------------------------------------------- strings and formatting

function t(key, vars = {}) {
  const text = STRINGS[state.lang][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

function applyLang() {
  document.documentElement.lang = state.lang;
  for (const el of document.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  const other = state.lang === "en" ? "ko" : "en";
  const toggle = $("lang");
  toggle.textContent = other === "ko" ? "한국어" : "English";
  toggle.lang = other;
  document.title = `${t("billing")} · creditflow`;
  renderAll();
}

/** "1234567.5" -> "1,234,567.5" (a string stays a string: never through a float). */
function formatDecimal(text) {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(text));
  if (!match) return String(text);
  const whole = match[2].replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return match[1] + whole + (match[3] ? `.${match[3]}` : "");
}

function formatInt(value) {
  return formatDecimal(String(value));
}

function formatMoney(amount, currency) {
  return `${formatDecimal(amount)} ${currency}`;
}

/** Exact micro-credits of a decimal string, as a BigInt (for sorting and ratios). */
function toMicro(text) {
  const [whole, fraction = ""] = String(text).split(".");
  return BigInt(whole + (fraction + "000000").slice(0, 6));
}

function isZero(text) {
  return /^0(\.0*)?$/.test(String(text));
}

function share(credits, total) {
  const whole = toMicro(total);
  return whole === 0n ? 0 : (Number(toMicro(credits)) / Number(whole)) * 100;
}

// ---------------------------------------------------------------- calendar dates (YYYY-MM-DD)

function parseDate(text) {
  const [y, m, d] = text.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d));
}

function formatDate(date) {
  return date.toISOString().slice(0, 10);
}

function addDays(text, days) {
  const date = parseDate(text);
  date.setUTCDate(date.getUTCDate() + days);
  return formatDate(date);
}

function nextMonth(text) {
  const date = parseDate(text.slice(0, 8) + "01");
  date.setUTCMonth(date.getUTCMonth() + 1);
  return formatDate(date);
}

function todayIn(tz, when = new Date()) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: tz,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  }).formatToParts(when);
  const get = (type) => parts.find((part) => part.type === type).value;
  return `${get("year")}-${get("month")}-${get("day")}`;
}

function localDate(instant, tz) {
  const date = new Date(instant);
  return Number.isNaN(date.getTime()) ? String(instant).slice(0, 10) : todayIn(tz, date);
}

function validZone(tz) {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function windowFor(from, to) {
  const days = (Date.parse(to) - Date.parse(from)) / 86400000;
  if (days <= 3) return "hour";
  return days <= 400 ? "day" : "month";
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: keep the status text
  }
  const error = body && body.error ? body.error : {};
  return new ApiError(response.status, error.code || "http_error", error.message || response.statusText);
}

async function api(path) {
  let response;
  try {
    response = await fetch(path, {
      headers: { Authorization: `Bearer ${state.token}`, Accept: "application/json" },
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, "network", String(error));
  }
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

function accountPath(account, rest) {
  return `/v1/accounts/${encodeURIComponent(account)}/${rest}`;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(key, value);
  }
  return search.toString();
}

/** Read a text/event-stream body, calling onMessage(event, data) per message. */
async function readSse(body, onMessage) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          if (field === "event") event = text;
          else if (field === "data") data.push(text);
        }
        if (data.length) onMessage(event, data.join("\n"));
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * A usage stream (fetch + ReadableStream: EventSource cannot send a bearer token), reconnecting
 * with backoff until closed. 401/403/400 end it through onError; the rest is retried.
 */
function openStream(name, url, onEvent, onError) {
  closeStream(name);
  const outer = new AbortController();
  state.streams[name] = outer;
  const setLive = (live) => {
    if (outer.signal.aborted) return;
    state.live[name] = live;
    renderSynced();
  };
  (async () => {
    let backoff = 500;
    while (!outer.signal.aborted) {
      const inner = new AbortController();
      const stop = () => inner.abort();
      outer.signal.addEventListener("abort", stop);
      let watchdog = setTimeout(stop, WATCHDOG_MS);
      try {
        const response = await fetch(url, {
          headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" },
          signal: inner.signal,
          cache: "no-store",
        });
        if (!response.ok) {
          const error = await errorOf(response);
          if ([400, 401, 403, 404].includes(error.status)) {
            if (!outer.signal.aborted) onError(error);
            return;
          }
          throw error;
        }
        await readSse(response.body, (event, data) => {
          if (outer.signal.aborted) return;
          clearTimeout(watchdog);
          watchdog = setTimeout(stop, WATCHDOG_MS);
          backoff = 500;
          if (event === "unavailable") {
            setLive(false);
            showBanner(t("errRebuilding"), "info");
            return;
          }
          setLive(true);
          onEvent(event, JSON.parse(data));
        });
      } catch (error) {
        if (outer.signal.aborted) return;
        if (error instanceof ApiError && error.status === 503) showBanner(t("errRebuilding"), "info");
      } finally {
        clearTimeout(watchdog);
        outer.signal.removeEventListener("abort", stop);
      }
      setLive(false);
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, 10000);
    }
  })();
}

function closeStream(name) {
  const stream = state.streams[name];
  if (stream) stream.abort();
  delete state.streams[name];
  state.live[name] = false;
}

function closeStreams() {
  for (const name of Object.keys(state.streams)) closeStream(name);
}

// ---------------------------------------------------------------- states and errors

function showBanner(text, kind = "error") {
  const banner = $("banner");
  banner.textContent = text;
  banner.dataset.kind = kind;
  banner.hidden = false;
}

function hideBanner(kind) {
  const banner = $("banner");
  if (!kind || banner.dataset.kind === kind) banner.hidden = true;
}

function handleError(error) {
  if (error.status === 401) {
    signOut(t("errUnauthorized"));
  } else if (error.status === 403) {
    closeStreams();
    $("account-content").hidden = true;
    showBanner(t("errForbidden", { account: state.account }), "forbidden");
  } else if (error.status === 503 || error.status === 0) {
    showBanner(t(error.status === 0 ? "errNetwork" : "errRebuilding"), "info");
    const gen = state.gen;
    setTimeout(() => {
      if (gen === state.gen && state.token) loadAccount(state.account, { push: false });
    }, 2000);
  } else {
    showBanner(t("errGeneric", { message: error.message }));
  }
}

function setSignedIn(signedIn) {
  document.body.classList.toggle("signed-in", signedIn);
  document.body.classList.toggle("signed-out", !signedIn);
  $("signin").hidden = signedIn;
  for (const el of document.querySelectorAll(".when-signed-in")) el.hidden = !signedIn;
  if (signedIn) $("account-picker").hidden = !showPicker();
}

function signOut(message) {
  closeStreams();
  state.gen += 1;
  state.token = null;
  state.whoami = null;
  sessionStorage.removeItem(TOKEN_KEY);
  setSignedIn(false);
  const error = $("signin-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("token").value = "";
  $("token").focus();
}

// ---------------------------------------------------------------- sign-in and accounts

function accountFromUrl() {
  const match = /^\/accounts\/([^/]+)\/billing\/?$/.exec(window.location.pathname);
  return match ? decodeURIComponent(match[1]) : null;
}

function showPicker() {
  return state.choices.length > 1 || (state.account !== null && !state.choices.includes(state.account));
}

function renderPicker() {
  const select = $("account-select");
  select.replaceChildren();
  const options = [...state.choices];
  if (state.account && !options.includes(state.account)) options.unshift(state.account);
  for (const account of options) {
    const option = document.createElement("option");
    option.value = account;
    option.textContent = account;
    select.append(option);
  }
  select.value = state.account ?? "";
  $("account-picker").hidden = !showPicker();
  $("account-name").textContent = showPicker() ? "" : state.account ?? "";
}

async function signIn(token) {
  state.token = token;
  let who;
  try {
    who = await api("/v1/whoami");
  } catch (error) {
    state.token = null;
    const message = error.status === 401 ? t("errUnauthorized") : t("errGeneric", { message: error.message });
    signOut(message);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  state.whoami = who;
  let choices = who.accounts;
  if (choices === null) {
    try {
      choices = (await api("/v1/accounts")).accounts.map((row) => row.account_id);
    } catch {
      choices = [];
    }
  }
  state.choices = choices;
  setSignedIn(true);
  const account = accountFromUrl() ?? choices[0] ?? null;
  if (account === null) {
    $("account-content").hidden = true;
    showBanner(t("errNoAccount"));
    return;
  }
  await loadAccount(account, { push: false });
}

async function loadAccount(account, { push }) {
  closeStreams();
  const gen = ++state.gen;
  Object.assign(state, { account, billing: null, previous: undefined, usage: null, asOf: null, lag: 0 });
  const path = `/accounts/${encodeURIComponent(account)}/billing`;
  if (window.location.pathname !== path) {
    if (push) history.pushState({ account }, "", path);
    else history.replaceState({ account }, "", path);
  }
  renderPicker();
  hideBanner();
  $("account-content").hidden = false;
  document.body.classList.add("loading");
  renderAll();

  let billing = null;
  try {
    billing = await api(accountPath(account, "billing"));
  } catch (error) {
    if (gen !== state.gen) return;
    if (error.code !== "no_contract") {
      document.body.classList.remove("loading");
      handleError(error);
      return;
    }
  }
  if (gen !== state.gen) return;
  let tz = billing ? billing.period.tz : null;
  if (tz === null) {
    // No contract: the API's default zone for the account, as a usage answer states it.
    try {
      const today = formatDate(new Date());
      const probe = await api(
        `${accountPath(account, "usage")}?${query({ from: today, to: addDays(today, 1), group_by: "none" })}`,
      );
      tz = probe.tz;
    } catch (error) {
      if (gen !== state.gen) return;
      document.body.classList.remove("loading");
      handleError(error);
      return;
    }
    if (gen !== state.gen) return;
  }
  state.billing = billing;
  state.tz = tz;
  $("tz").value = tz;
  document.body.classList.remove("loading");
  renderBilling();
  startPeriodStream();
  await choosePreset(billing ? "current" : "month");
}

// ---------------------------------------------------------------- billing (the current period)

function startPeriodStream() {
  const billing = state.billing;
  if (!billing) return;
  const account = state.account;
  const url = `${accountPath(account, "usage/stream")}?${query({
    from: billing.period.start_at,
    to: billing.period.end_at,
    tz: billing.period.tz,
    window: "none",
    group_by: "none",
  })}`;
  openStream(
    "period",
    url,
    (event, answer) => {
      if (event !== "usage") return;
      setFreshness(answer);
      if (state.billing && answer.total.credits !== state.billing.used) refreshBilling();
    },
    handleError,
  );
}

async function refreshBilling() {
  if (state.billingInFlight) {
    state.billingDirty = true;
    return;
  }
  state.billingInFlight = true;
  const gen = state.gen;
  try {
    do {
      state.billingDirty = false;
      const billing = await api(accountPath(state.account, "billing"));
      if (gen !== state.gen) return;
      const periodChanged = !state.billing || state.billing.period.start_at !== billing.period.start_at;
      state.billing = billing;
      renderBilling();
      if (periodChanged) startPeriodStream();
    } while (state.billingDirty);
  } catch (error) {
    if (gen === state.gen) handleError(error);
  } finally {
    state.billingInFlight = false;
  }
}

function setFreshness(answer) {
  state.asOf = answer.as_of;
  state.lag = answer.lag ?? 0;
  if ($("banner").dataset.kind === "info") hideBanner("info");
  renderSynced();
}

function safeUrl(url) {
  if (!url) return null;
  try {
    const parsed = new URL(url, window.location.href);
    return ["http:", "https:", "mailto:"].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

function setValue(id, raw, text) {
  const el = $(id);
  el.textContent = text;
  if (raw === null || raw === undefined) delete el.dataset.value;
  else el.dataset.value = String(raw);
}

function renderBilling() {
  const billing = state.billing;
  const dash = "—";
  $("no-contract").hidden = billing !== null || state.account === null || document.body.classList.contains("loading");
  $("usage-card").classList.toggle("over", Boolean(billing) && !isZero(billing.overage_credits));
  if (!billing) {
    const placeholder = document.body.classList.contains("loading") ? "…" : dash;
    for (const id of ["plan-name", "plan-allotment", "plan-rate", "plan-period", "plan-limit", "used", "allotment", "remaining"]) {
      setValue(id, null, placeholder);
    }
    setValue("percent-used", null, "");
    $("access-paused").hidden = true;
    $("upgrade").hidden = true;
    $("overage-box").hidden = true;
    $("usage-bar-fill").style.width = "0%";
    $("usage-bar-over").style.width = "0%";
    $("alerts").replaceChildren();
    return;
  }
  const plan = billing.plan;
  const name = plan.name.charAt(0).toUpperCase() + plan.name.slice(1);
  setValue("plan-name", plan.name, t("planName", { name }));
  setValue("plan-allotment", plan.allotment, formatDecimal(plan.allotment));
  setValue("plan-rate", plan.payg_rate, t("perCredit", { amount: formatMoney(plan.payg_rate, plan.currency) }));
  const period = billing.period;
  setValue("plan-period", period.start, `${period.start} – ${addDays(period.end, -1)} (${period.tz})`);
  setValue("plan-limit", String(plan.hard_limit), t(plan.hard_limit ? "limitHard" : "limitSoft"));
  // On a hard-limit contract the access check denies once the allotment is used (remaining 0).
  $("access-paused").hidden = !(plan.hard_limit && isZero(billing.remaining));
  const upgrade = safeUrl(plan.upgrade_url);
  $("upgrade").hidden = upgrade === null;
  if (upgrade) {
    $("upgrade").href = upgrade;
    // A web page opens beside the dashboard; a mailto: link goes to the mail client.
    if (upgrade.startsWith("mailto:")) $("upgrade").removeAttribute("target");
    else $("upgrade").target = "_blank";
  }

  setValue("used", billing.used, formatDecimal(billing.used));
  setValue("allotment", billing.allotment, formatDecimal(billing.allotment));
  setValue("remaining", billing.remaining, formatDecimal(billing.remaining));
  const percent = billing.percent_used;
  setValue("percent-used", percent, percent === null ? "" : t("percentUsed", { percent }));
  // Geometry only: past the allotment the bar is the whole usage, the allotment part first.
  const over = !isZero(billing.overage_credits);
  const ratio = percent === null ? null : Number(percent);
  let within = ratio === null ? 0 : Math.min(100, ratio);
  if (over) within = ratio === null ? 0 : 10000 / ratio;
  $("usage-bar-fill").style.width = `${within}%`;
  $("usage-bar-over").style.width = over ? `${100 - within}%` : "0%";
  $("usage-bar").setAttribute("aria-valuenow", percent === null ? "100" : String(percent));
  $("usage-bar").classList.toggle("warn", ratio !== null && ratio >= 80 && !over);
  $("overage-box").hidden = !over;
  setValue("overage-credits", billing.overage_credits, formatDecimal(billing.overage_credits));
  setValue("overage-amount", billing.overage_amount, formatMoney(billing.overage_amount, billing.currency));
  const alerts = $("alerts");
  alerts.replaceChildren();
  for (const alert of billing.alerts || []) {
    const item = document.createElement("li");
    item.textContent = t("alertFired", {
      threshold: alert.threshold_percent,
      date: localDate(alert.crossed_at, period.tz),
    });
    alerts.append(item);
  }
}

function renderSynced() {
  const el = $("synced");
  const live = Object.entries(state.streams).every(([name]) => state.live[name]);
  el.classList.toggle("live", live && state.asOf !== null);
  if (!state.account || document.body.classList.contains("loading")) {
    el.textContent = "";
    return;
  }
  if (Object.keys(state.streams).length && !live) {
    el.textContent = t("reconnecting");
    return;
  }
  if (!state.asOf) {
    el.textContent = t("syncedUnknown");
    delete el.dataset.asOf;
    return;
  }
  el.dataset.asOf = state.asOf;
  el.title = state.asOf;
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(state.asOf)) / 1000));
  let text = seconds < 2 ? t("syncedJustNow") : t("syncedAgo", { n: seconds });
  if (state.lag > 0) text += ` · ${t("pending", { n: formatInt(state.lag) })}`;
  el.textContent = text;
}

// ---------------------------------------------------------------- the selected range

async function presetRange(preset) {
  const tz = state.tz;
  const today = todayIn(tz);
  if (preset === "current" || preset === "previous") {
    let billing = state.billing;
    if (preset === "previous") {
      if (state.previous === undefined) {
        try {
          state.previous = await api(`${accountPath(state.account, "billing")}?period=previous`);
        } catch (error) {
          if (error.code !== "no_period") throw error;
          state.previous = null;
        }
      }
      billing = state.previous;
    }
    if (!billing) return null;
    const period = billing.period;
    return { from: period.start_at, to: period.end_at, fromDate: period.start, toDate: period.end };
  }
  if (preset === "last7") return { from: addDays(today, -6), to: addDays(today, 1) };
  if (preset === "last30") return { from: addDays(today, -29), to: addDays(today, 1) };
  const first = today.slice(0, 8) + "01";
  return { from: first, to: nextMonth(first) };
}

async function choosePreset(preset) {
  const gen = state.gen;
  $("range-error").hidden = true;
  let range;
  try {
    range = await presetRange(preset);
  } catch (error) {
    if (gen === state.gen) handleError(error);
    return;
  }
  if (gen !== state.gen) return;
  if (!range) {
    $("range-error").textContent = t(preset === "previous" ? "noPreviousPeriod" : "noContract");
    $("range-error").hidden = false;
    return;
  }
  setRange({ preset, fromDate: range.from, toDate: range.to, ...range });
}

function setRange(range) {
  range.window = windowFor(range.from, range.to);
  state.range = range;
  state.usage = null;
  for (const button of document.querySelectorAll("[data-preset]")) {
    button.setAttribute("aria-pressed", String(button.dataset.preset === range.preset));
  }
  $("from-date").value = range.fromDate;
  $("to-date").value = addDays(range.toDate, -1);
  renderRange();
  const url = `${accountPath(state.account, "usage/stream")}?${query({
    from: range.from,
    to: range.to,
    tz: state.tz,
    window: range.window,
    group_by: "app",
  })}`;
  openStream(
    "range",
    url,
    (event, answer) => {
      if (event !== "usage") return;
      state.usage = answer;
      setFreshness(answer);
      renderRange();
    },
    (error) => {
      if (error.status === 400) {
        $("range-error").textContent = error.message;
        $("range-error").hidden = false;
      } else {
        handleError(error);
      }
    },
  );
}

function applyCustomRange(event) {
  event.preventDefault();
  const from = $("from-date").value;
  const to = $("to-date").value;
  if (!from || !to || to < from) {
    $("range-error").textContent = t("errRange");
    $("range-error").hidden = false;
    return;
  }
  $("range-error").hidden = true;
  setRange({ preset: "custom", from, to: addDays(to, 1), fromDate: from, toDate: addDays(to, 1) });
}

function applyZone(event) {
  if (event) event.preventDefault();
  const tz = $("tz").value.trim();
  if (!tz || tz === state.tz || !state.range) return;
  if (!validZone(tz)) {
    $("range-error").textContent = t("errTz", { tz });
    $("range-error").hidden = false;
    return;
  }
  $("range-error").hidden = true;
  state.tz = tz;
  const preset = state.range.preset;
  if (preset === "custom") {
    const { fromDate, toDate } = state.range;
    setRange({ preset, from: fromDate, to: toDate, fromDate, toDate });
  } else {
    choosePreset(preset);
  }
}

function sortedApps(apps) {
  const { key, dir } = state.sort;
  const rows = [...apps];
  const compare = {
    app_id: (a, b) => a.app_id.localeCompare(b.app_id),
    calls: (a, b) => a.calls - b.calls,
    credits: (a, b) => {
      const x = toMicro(a.credits);
      const y = toMicro(b.credits);
      return x < y ? -1 : x > y ? 1 : 0;
    },
  };
  compare.share = compare.credits;
  rows.sort((a, b) => dir * compare[key](a, b) || a.app_id.localeCompare(b.app_id));
  return rows;
}

function renderRange() {
  const range = state.range;
  const answer = state.usage;
  $("range-label").textContent = range
    ? `${range.fromDate.slice(0, 10)} – ${addDays(range.toDate.slice(0, 10), -1)} (${state.tz})`
    : "";
  $("chart-unit").textContent = range
    ? t({ hour: "perHour", day: "perDay", month: "perMonth" }[range.window])
    : "";
  for (const th of document.querySelectorAll("#apps-table th[scope=col]")) {
    const key = th.querySelector("button").dataset.sort;
    th.setAttribute("aria-sort", key === state.sort.key ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
  }
  const body = $("apps-body");
  body.replaceChildren();
  document.body.classList.toggle("range-loading", !answer);
  if (!answer) {
    setValue("range-credits", null, "…");
    setValue("range-calls", null, "…");
    const row = body.insertRow();
    const cell = row.insertCell();
    cell.colSpan = 4;
    cell.className = "loading-cell";
    cell.textContent = t("loading");
    for (const id of ["table-calls", "table-credits", "table-share"]) setValue(id, null, "");
    $("table-empty").hidden = true;
    $("chart-empty").hidden = true;
    $("chart").replaceChildren();
    return;
  }
  const total = answer.total;
  setValue("range-credits", total.credits, formatDecimal(total.credits));
  setValue("range-calls", total.calls, formatInt(total.calls));
  const apps = sortedApps(answer.apps || []);
  for (const app of apps) {
    const row = body.insertRow();
    row.dataset.app = app.app_id;
    const name = row.insertCell();
    name.className = "app";
    name.textContent = app.app_id;
    const calls = row.insertCell();
    calls.className = "num calls";
    calls.dataset.value = String(app.calls);
    calls.textContent = formatInt(app.calls);
    const credits = row.insertCell();
    credits.className = "num credits";
    credits.dataset.value = app.credits;
    credits.textContent = formatDecimal(app.credits);
    const pct = share(app.credits, total.credits);
    const shareCell = row.insertCell();
    shareCell.className = "num share";
    shareCell.dataset.value = pct.toFixed(4);
    const meter = document.createElement("span");
    meter.className = "meter";
    const fill = document.createElement("span");
    fill.style.width = `${Math.min(100, pct)}%`;
    meter.append(fill);
    shareCell.append(meter, document.createTextNode(`${pct.toFixed(1)}%`));
  }
  setValue("table-calls", total.calls, formatInt(total.calls));
  setValue("table-credits", total.credits, formatDecimal(total.credits));
  setValue("table-share", null, apps.length ? "100%" : "");
  const empty = apps.length === 0 && total.calls === 0 && isZero(total.credits);
  $("table-empty").hidden = !empty;
  $("apps-table").classList.toggle("empty", empty);
  $("chart-empty").hidden = !empty;
  renderChart(answer, range.window, empty);
}

// ---------------------------------------------------------------- the chart (hand-rolled SVG)

const SVG = "http://www.w3.org/2000/svg";

function svg(name, attrs = {}, text) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function axisLabel(value) {
  return new Intl.NumberFormat(state.lang === "ko" ? "ko-KR" : "en-US", {
    notation: value >= 100000 ? "compact" : "standard",
    maximumFractionDigits: 2,
  }).format(value);
}

function pointLabel(start, window) {
  if (window === "month") return start.slice(0, 7);
  if (window === "hour") return `${start.slice(5, 10)} ${start.slice(11, 16)}`;
  return start.slice(0, 10);
}

function renderChart(answer, window, empty) {
  const chart = $("chart");
  chart.replaceChildren();
  if (empty) return;
  const width = 880;
  const height = 240;
  const left = 60;
  const right = 12;
  const top = 12;
  const bottom = 30;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const series = answer.series || [];
  const values = series.map((point) => Number(point.credits)); // geometry only
  const ceiling = niceCeiling(Math.max(0, ...values));
  const grid = svg("g", { class: "grid" });
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotH - fraction * plotH;
    grid.append(svg("line", { x1: left, x2: width - right, y1: y, y2: y }));
    grid.append(svg("text", { x: left - 8, y: y + 4, "text-anchor": "end" }, axisLabel(ceiling * fraction)));
  }
  chart.append(grid);
  const n = Math.max(1, series.length);
  const slot = plotW / n;
  const barW = Math.max(1, slot * 0.72);
  const bars = svg("g", { class: "bars" });
  const labels = svg("g", { class: "labels" });
  const every = Math.ceil(n / 8);
  series.forEach((point, i) => {
    const h = ceiling > 0 ? (values[i] / ceiling) * plotH : 0;
    const shown = values[i] > 0 ? Math.max(h, 1.5) : 0;
    const x = left + i * slot + (slot - barW) / 2;
    const bar = svg("rect", {
      class: "bar",
      x: x.toFixed(2),
      y: (top + plotH - shown).toFixed(2),
      width: barW.toFixed(2),
      height: shown.toFixed(2),
      rx: Math.min(3, barW / 4).toFixed(2),
      "data-start": point.start,
      "data-end": point.end,
      "data-credits": point.credits,
      "data-calls": point.calls,
    });
    bar.append(
      svg(
        "title",
        {},
        `${pointLabel(point.start, window)}: ${formatDecimal(point.credits)} ${t("credits")} · ${formatInt(point.calls)} ${t("colCalls")}`,
      ),
    );
    bars.append(bar);
    if (i % every === 0) {
      const label = window === "hour" ? point.start.slice(11, 16) : window === "month" ? point.start.slice(0, 7) : point.start.slice(5, 10);
      labels.append(svg("text", { x: (x + barW / 2).toFixed(2), y: height - 10, "text-anchor": "middle" }, label));
    }
  });
  chart.append(bars, labels);
}

// ---------------------------------------------------------------- CSV export

function csvField(value) {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function exportCsv() {
  const answer = state.usage;
  if (!answer || !state.range) return;
  const total = answer.total;
  const rows = [["app_id", "calls", "credits", "share_percent"]];
  for (const app of sortedApps(answer.apps || [])) {
    rows.push([app.app_id, app.calls, app.credits, share(app.credits, total.credits).toFixed(2)]);
  }
  rows.push(["(total)", total.calls, total.credits, isZero(total.credits) ? "0.00" : "100.00"]);
  const text = rows.map((row) => row.map(csvField).join(",")).join("\r\n") + "\r\n";
  const blob = new Blob([text], { type: "text/csv;charset=utf-8" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  const last = addDays(state.range.toDate.slice(0, 10), -1);
  link.download = `creditflow-${state.account}-${state.range.fromDate.slice(0, 10)}-to-${last}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// ---------------------------------------------------------------- wiring

function renderAll() {
  renderBilling();
  renderRange();
  renderSynced();
}

function fillZones() {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const list = $("tz-list");
  for (const zone of ["UTC", ...zones]) {
    const option = document.createElement("option");
    option.value = zone;
    list.append(option);
  }
}

function init() {
  const saved = localStorage.getItem(LANG_KEY);
  state.lang = saved && STRINGS[saved] ? saved : navigator.language.startsWith("ko") ? "ko" : "en";
  fillZones();
  applyLang();
  $("lang").addEventListener("click", () => {
    state.lang = state.lang === "en" ? "ko" : "en";
    localStorage.setItem(LANG_KEY, state.lang);
    applyLang();
  });
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    $("signin-submit").disabled = true;
    $("signin-submit").textContent = t("signingIn");
    try {
      await signIn(token);
    } finally {
      $("signin-submit").disabled = false;
      $("signin-submit").textContent = t("signIn");
    }
  });
  $("signout").addEventListener("click", () => signOut());
  $("account-select").addEventListener("change", (event) => loadAccount(event.target.value, { push: true }));
  for (const button of document.querySelectorAll("[data-preset]")) {
    button.addEventListener("click", () => choosePreset(button.dataset.preset));
  }
  $("custom-range").addEventListener("submit", applyCustomRange);
  $("tz-form").addEventListener("submit", applyZone);
  $("tz").addEventListener("change", () => applyZone());
  for (const button of document.querySelectorAll("[data-sort]")) {
    button.addEventListener("click", () => {
      const key = button.dataset.sort;
      state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : key === "app_id" ? 1 : -1 };
      renderRange();
    });
  }
  $("export-csv").addEventListener("click", exportCsv);
  window.addEventListener("popstate", () => {
    const account = accountFromUrl();
    if (state.token && account && account !== state.account) loadAccount(account, { push: false });
  });
  setInterval(() => {
    renderSynced();
    const billing = state.billing;
    if (billing && state.token && Date.now() >= Date.parse(billing.period.end_at)) refreshBilling();
  }, 1000);
  // A platform embeds the page for its customer with a portal token in the fragment
  // (#token=...): never sent to a server, and removed from the address bar at once.
  const fragment = new URLSearchParams(window.location.hash.slice(1)).get("token");
  if (fragment) history.replaceState(history.state, "", window.location.pathname + window.location.search);
  const token = fragment || sessionStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else signOut();
}

init();
