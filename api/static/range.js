// The period selector and what it shows: totals, the chart and the per-app table of the selected
// range, kept live by the range's usage stream, and the CSV export. Owned here: the time zone,
// the range, its last usage answer and the table's order.
import * as account from "./account.js";
import { accountPath, query } from "./api.js";
import { appShare, ariaSort, DEFAULT_SORT, nextSort, sortApps } from "./apps.js";
import * as billing from "./billing.js";
import { renderChart } from "./chart.js";
import { csvFileName, csvText, download, usageRows } from "./csv.js";
import { customRange, lastDay, periodRange, presetDays, rangeLabel, todayIn, validZone, windowFor } from "./dates.js";
import { $, rangeError, setValue } from "./dom.js";
import { formatDecimal, formatInt, isZero } from "./format.js";
import { t } from "./i18n.js";
import * as live from "./live.js";

const UNIT = { hour: "perHour", day: "perDay", month: "perMonth" };

let tz = null; // the zone the range's days are in: the account's, or the one picked
let range = null; // {preset, from, to, fromDate, toDate, window}
let usage = null; // the last usage answer of the range (null: awaited)
let sort = DEFAULT_SORT;

/** A new account: no answer yet. */
export function reset() {
  usage = null;
}

/** The account's time zone, once its first answer states it. */
export function setZone(zone) {
  tz = zone;
  $("tz").value = zone;
}

async function presetRange(preset) {
  if (preset === "current" || preset === "previous") {
    const answer = preset === "current" ? billing.current() : await billing.previousPeriod();
    return answer ? periodRange(answer.period) : null;
  }
  return presetDays(preset, todayIn(tz));
}

/** Select a preset: this or the last billing period, the last 7 or 30 days, this month. */
export async function choosePreset(preset) {
  const stillCurrent = account.ticket();
  rangeError(null);
  let dates;
  try {
    dates = await presetRange(preset);
  } catch (error) {
    if (stillCurrent()) account.fail(error);
    return;
  }
  if (!stillCurrent()) return;
  if (!dates) {
    rangeError(t(preset === "previous" ? "noPreviousPeriod" : "noContract"));
    return;
  }
  select({ preset, fromDate: dates.from, toDate: dates.to, ...dates });
}

function select(next) {
  range = { ...next, window: windowFor(next.from, next.to) };
  usage = null;
  for (const button of document.querySelectorAll("[data-preset]")) {
    button.setAttribute("aria-pressed", String(button.dataset.preset === range.preset));
  }
  $("from-date").value = range.fromDate;
  $("to-date").value = lastDay(range.toDate);
  render();
  const url = `${accountPath(account.current(), "usage/stream")}?${query({
    from: range.from,
    to: range.to,
    tz,
    window: range.window,
    group_by: "app",
  })}`;
  live.open(
    "range",
    url,
    (event, answer) => {
      if (event !== "usage") return;
      usage = answer;
      live.fresh(answer);
      render();
    },
    (error) => {
      if (error.status === 400) rangeError(error.message);
      else account.fail(error);
    },
  );
}

/** The custom form: its inclusive dates. */
export function applyCustomRange(event) {
  event.preventDefault();
  const next = customRange($("from-date").value, $("to-date").value);
  rangeError(next ? null : t("errRange"));
  if (next) select(next);
}

/** The time zone field: the same range's days in another zone. */
export function applyZone(event) {
  if (event) event.preventDefault();
  const zone = $("tz").value.trim();
  if (!zone || zone === tz || !range) return;
  if (!validZone(zone)) {
    rangeError(t("errTz", { tz: zone }));
    return;
  }
  rangeError(null);
  tz = zone;
  if (range.preset === "custom") {
    const { fromDate, toDate } = range;
    select({ preset: "custom", from: fromDate, to: toDate, fromDate, toDate });
  } else {
    choosePreset(range.preset);
  }
}

/** A click on a column header. */
export function sortBy(key) {
  sort = nextSort(sort, key);
  render();
}

/** Download the table as shown. */
export function exportCsv() {
  if (!usage || !range) return;
  download(csvText(usageRows(usage, sort)), csvFileName(account.current(), range));
}

function renderLoading(body) {
  setValue("range-credits", null, "…");
  setValue("range-calls", null, "…");
  const cell = body.insertRow().insertCell();
  cell.colSpan = 4;
  cell.className = "loading-cell";
  cell.textContent = t("loading");
  for (const id of ["table-calls", "table-credits", "table-share"]) setValue(id, null, "");
  $("table-empty").hidden = true;
  $("chart-empty").hidden = true;
  $("chart").replaceChildren();
}

function appRow(body, app, total) {
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
  const share = row.insertCell();
  share.className = "num share";
  share.dataset.value = appShare(app, total, 4);
  const meter = document.createElement("span");
  meter.className = "meter";
  const fill = document.createElement("span");
  fill.style.width = `${Math.min(100, Number(share.dataset.value))}%`; // geometry only
  meter.append(fill);
  share.append(meter, document.createTextNode(`${appShare(app, total, 1)}%`));
}

/** Draw the range's label, totals, table and chart from the last answer. */
export function render() {
  $("range-label").textContent = range ? rangeLabel(range, tz) : "";
  $("chart-unit").textContent = range ? t(UNIT[range.window]) : "";
  for (const th of document.querySelectorAll("#apps-table th[scope=col]")) {
    th.setAttribute("aria-sort", ariaSort(sort, th.querySelector("button").dataset.sort));
  }
  const body = $("apps-body");
  body.replaceChildren();
  document.body.classList.toggle("range-loading", !usage);
  if (!usage) {
    renderLoading(body);
    return;
  }
  const total = usage.total;
  setValue("range-credits", total.credits, formatDecimal(total.credits));
  setValue("range-calls", total.calls, formatInt(total.calls));
  const apps = sortApps(usage.apps || [], sort);
  for (const app of apps) appRow(body, app, total);
  setValue("table-calls", total.calls, formatInt(total.calls));
  setValue("table-credits", total.credits, formatDecimal(total.credits));
  setValue("table-share", null, apps.length ? "100%" : "");
  const empty = apps.length === 0 && total.calls === 0 && isZero(total.credits);
  $("table-empty").hidden = !empty;
  $("apps-table").classList.toggle("empty", empty);
  $("chart-empty").hidden = !empty;
  renderChart($("chart"), usage.series || [], range.window, empty);
}
