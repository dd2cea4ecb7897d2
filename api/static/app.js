// The billing page (Settings > Billing): sign-in, the account picker, loading an account and
// what an error does, and the wiring of the page's controls. No build step, no dependencies.
// The parts: billing.js (plan and usage cards), range.js (period, chart, table, CSV), live.js
// (streams and "synced"), with pure helpers in format, dates, api, sse, chart, apps and csv.
import * as account from "./account.js";
import { accountOfPage, accountPath, billingPage, query } from "./api.js";
import * as billing from "./billing.js";
import { addDays, formatDate } from "./dates.js";
import { $, hideBanner, showBanner } from "./dom.js";
import { LANGS, lang, pickLang, setLang, t } from "./i18n.js";
import * as live from "./live.js";
import * as range from "./range.js";
import * as session from "./session.js";

const LANG_KEY = "creditflow.lang";
const RETRY_MS = 2000; // a rebuilding view or an unreachable API: load the account again

function renderAll() {
  billing.render();
  range.render();
  live.renderSynced();
}

function applyLang() {
  document.documentElement.lang = lang();
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  const other = LANGS.find((code) => code !== lang());
  const toggle = $("lang");
  toggle.textContent = other === "ko" ? "한국어" : "English";
  toggle.lang = other;
  document.title = `${t("billing")} · creditflow`;
  renderAll();
}

// ---------------------------------------------------------------- errors

function handleError(error) {
  if (error.status === 401) {
    signOut(t("errUnauthorized"));
  } else if (error.status === 403) {
    live.closeAll();
    $("account-content").hidden = true;
    showBanner(t("errForbidden", { account: account.current() }), "forbidden");
  } else if (error.status === 503 || error.status === 0) {
    showBanner(t(error.status === 0 ? "errNetwork" : "errRebuilding"), "info");
    const stillCurrent = account.ticket();
    setTimeout(() => {
      if (stillCurrent() && session.bearer()) loadAccount(account.current(), { push: false });
    }, RETRY_MS);
  } else {
    showBanner(t("errGeneric", { message: error.message }));
  }
}

// ---------------------------------------------------------------- sign-in and accounts

function showPicker() {
  const choices = session.accountChoices();
  const shown = account.current();
  return choices.length > 1 || (shown !== null && !choices.includes(shown));
}

function setSignedIn(signedIn) {
  document.body.classList.toggle("signed-in", signedIn);
  document.body.classList.toggle("signed-out", !signedIn);
  $("signin").hidden = signedIn;
  for (const el of document.querySelectorAll(".when-signed-in")) el.hidden = !signedIn;
  if (signedIn) $("account-picker").hidden = !showPicker();
}

function signOut(message) {
  live.closeAll();
  account.invalidate();
  session.close();
  setSignedIn(false);
  const error = $("signin-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("token").value = "";
  $("token").focus();
}

function renderPicker() {
  const shown = account.current();
  const select = $("account-select");
  select.replaceChildren();
  const options = [...session.accountChoices()];
  if (shown && !options.includes(shown)) options.unshift(shown);
  for (const choice of options) {
    const option = document.createElement("option");
    option.value = choice;
    option.textContent = choice;
    select.append(option);
  }
  select.value = shown ?? "";
  $("account-picker").hidden = !showPicker();
  $("account-name").textContent = showPicker() ? "" : (shown ?? "");
}

async function signIn(token) {
  try {
    await session.open(token);
  } catch (error) {
    signOut(error.status === 401 ? t("errUnauthorized") : t("errGeneric", { message: error.message }));
    return;
  }
  setSignedIn(true);
  const first = accountOfPage(window.location.pathname) ?? session.accountChoices()[0] ?? null;
  if (first === null) {
    $("account-content").hidden = true;
    showBanner(t("errNoAccount"));
    return;
  }
  await loadAccount(first, { push: false });
}

/** The account's zone: its contract's, else the API's default as a usage answer states it. */
async function zoneOf(name, answer) {
  if (answer) return answer.period.tz;
  const today = formatDate(new Date());
  const probe = await session.get(
    `${accountPath(name, "usage")}?${query({ from: today, to: addDays(today, 1), group_by: "none" })}`,
  );
  return probe.tz;
}

async function loadAccount(name, { push }) {
  live.closeAll();
  const stillCurrent = account.begin(name);
  billing.reset();
  range.reset();
  live.reset();
  const path = billingPage(name);
  if (window.location.pathname !== path) {
    if (push) history.pushState({ account: name }, "", path);
    else history.replaceState({ account: name }, "", path);
  }
  renderPicker();
  hideBanner();
  $("account-content").hidden = false;
  document.body.classList.add("loading");
  renderAll();

  let answer = null;
  let tz;
  try {
    try {
      answer = await session.get(accountPath(name, "billing"));
    } catch (error) {
      if (error.code !== "no_contract") throw error;
    }
    if (!stillCurrent()) return;
    tz = await zoneOf(name, answer);
  } catch (error) {
    if (!stillCurrent()) return;
    document.body.classList.remove("loading");
    handleError(error);
    return;
  }
  if (!stillCurrent()) return;
  range.setZone(tz);
  document.body.classList.remove("loading");
  billing.show(answer);
  await range.choosePreset(answer ? "current" : "month");
}

// ---------------------------------------------------------------- wiring

function fillZones() {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const list = $("tz-list");
  for (const zone of ["UTC", ...zones]) {
    const option = document.createElement("option");
    option.value = zone;
    list.append(option);
  }
}

function wireSignIn() {
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
  window.addEventListener("popstate", () => {
    const shown = accountOfPage(window.location.pathname);
    if (session.bearer() && shown && shown !== account.current()) loadAccount(shown, { push: false });
  });
}

function wireRange() {
  for (const button of document.querySelectorAll("[data-preset]")) {
    button.addEventListener("click", () => range.choosePreset(button.dataset.preset));
  }
  $("custom-range").addEventListener("submit", range.applyCustomRange);
  $("tz-form").addEventListener("submit", range.applyZone);
  $("tz").addEventListener("change", () => range.applyZone());
  for (const button of document.querySelectorAll("[data-sort]")) {
    button.addEventListener("click", () => range.sortBy(button.dataset.sort));
  }
  $("export-csv").addEventListener("click", range.exportCsv);
}

function init() {
  account.handleErrorsWith(handleError);
  setLang(pickLang(localStorage.getItem(LANG_KEY), navigator.language));
  fillZones();
  applyLang();
  $("lang").addEventListener("click", () => {
    setLang(LANGS.find((code) => code !== lang()));
    localStorage.setItem(LANG_KEY, lang());
    applyLang();
  });
  wireSignIn();
  wireRange();
  setInterval(() => {
    live.renderSynced();
    if (session.bearer() && billing.periodOver()) billing.refresh();
  }, 1000);
  const token = session.startToken();
  if (token) signIn(token);
  else signOut();
}

init();
