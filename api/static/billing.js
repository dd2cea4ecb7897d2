// The plan and "usage this period" cards: the current period's billing answer, refreshed when
// the period's usage stream shows new credits or the period ends. Owned here: the current and
// the previous period's answers, and the refresh in flight.
import * as account from "./account.js";
import { accountPath, query } from "./api.js";
import { addDays, localDate } from "./dates.js";
import { $, loading, setValue } from "./dom.js";
import { compareDecimal, formatDecimal, formatMoney, isZero } from "./format.js";
import { t } from "./i18n.js";
import * as live from "./live.js";
import * as session from "./session.js";

let billing = null; // the current period's answer (null: no contract)
let previous; // the previous period's answer: undefined until asked, null if there is none
let inFlight = false;
let dirty = false; // new usage arrived while a refresh was in flight: refresh once more

/** The current period's billing answer (null: no contract, or not loaded yet). */
export function current() {
  return billing;
}

/** A new account: its answers are not in yet. */
export function reset() {
  billing = null;
  previous = undefined;
}

/** The account's first answer: show it and follow the period's usage. */
export function show(answer) {
  billing = answer;
  render();
  startPeriodStream();
}

/** The previous period's answer, fetched once per account (null when there is none). */
export async function previousPeriod() {
  if (previous === undefined) {
    try {
      previous = await session.get(`${accountPath(account.current(), "billing")}?period=previous`);
    } catch (error) {
      if (error.code !== "no_period") throw error;
      previous = null;
    }
  }
  return previous;
}

/** Whether the current period has ended (its answer is due for a refresh). */
export function periodOver(now = Date.now()) {
  return billing !== null && now >= Date.parse(billing.period.end_at);
}

function startPeriodStream() {
  if (!billing) return;
  const period = billing.period;
  const url = `${accountPath(account.current(), "usage/stream")}?${query({
    from: period.start_at,
    to: period.end_at,
    tz: period.tz,
    window: "none",
    group_by: "none",
  })}`;
  live.open(
    "period",
    url,
    (event, answer) => {
      if (event !== "usage") return;
      live.fresh(answer);
      if (billing && compareDecimal(answer.total.credits, billing.used) !== 0) refresh();
    },
    account.fail,
  );
}

/** Fetch the billing answer again (coalesced: one request at a time, one more if usage moved). */
export async function refresh() {
  if (inFlight) {
    dirty = true;
    return;
  }
  inFlight = true;
  const stillCurrent = account.ticket();
  try {
    do {
      dirty = false;
      const answer = await session.get(accountPath(account.current(), "billing"));
      if (!stillCurrent()) return;
      const periodChanged = !billing || billing.period.start_at !== answer.period.start_at;
      billing = answer;
      render();
      if (periodChanged) startPeriodStream();
    } while (dirty);
  } catch (error) {
    if (stillCurrent()) account.fail(error);
  } finally {
    inFlight = false;
  }
}

/** A link the page may open: http(s) or mailto only, absolute; else null. */
export function safeUrl(url, base) {
  if (!url) return null;
  try {
    const parsed = new URL(url, base);
    return ["http:", "https:", "mailto:"].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

/**
 * The usage bar's widths in percent (geometry only, from the API's percent_used): within the
 * allotment, then past it, where the bar is the whole usage with the allotment part first.
 */
export function usageBar(percent, over) {
  const ratio = percent === null ? null : Number(percent);
  let within = ratio === null ? 0 : Math.min(100, ratio);
  if (over) within = ratio === null ? 0 : 10000 / ratio;
  return { within, beyond: over ? 100 - within : 0, warn: ratio !== null && ratio >= 80 && !over };
}

function renderEmpty() {
  const placeholder = loading() ? "…" : "—";
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
}

function renderPlan(plan, period) {
  const name = plan.name.charAt(0).toUpperCase() + plan.name.slice(1);
  setValue("plan-name", plan.name, t("planName", { name }));
  setValue("plan-allotment", plan.allotment, formatDecimal(plan.allotment));
  setValue("plan-rate", plan.payg_rate, t("perCredit", { amount: formatMoney(plan.payg_rate, plan.currency) }));
  setValue("plan-period", period.start, `${period.start} – ${addDays(period.end, -1)} (${period.tz})`);
  setValue("plan-limit", String(plan.hard_limit), t(plan.hard_limit ? "limitHard" : "limitSoft"));
  const upgrade = safeUrl(plan.upgrade_url, window.location.href);
  const link = $("upgrade");
  link.hidden = upgrade === null;
  if (upgrade) {
    link.href = upgrade;
    // A web page opens beside the dashboard; a mailto: link goes to the mail client.
    if (upgrade.startsWith("mailto:")) link.removeAttribute("target");
    else link.target = "_blank";
  }
}

/** Draw both cards from the current answer. */
export function render() {
  $("no-contract").hidden = billing !== null || account.current() === null || loading();
  const over = Boolean(billing) && !isZero(billing.overage_credits);
  $("usage-card").classList.toggle("over", over);
  if (!billing) {
    renderEmpty();
    return;
  }
  const { plan, period } = billing;
  renderPlan(plan, period);
  // On a hard-limit contract the access check denies once the allotment is used (remaining 0).
  $("access-paused").hidden = !(plan.hard_limit && isZero(billing.remaining));
  setValue("used", billing.used, formatDecimal(billing.used));
  setValue("allotment", billing.allotment, formatDecimal(billing.allotment));
  setValue("remaining", billing.remaining, formatDecimal(billing.remaining));
  const percent = billing.percent_used;
  setValue("percent-used", percent, percent === null ? "" : t("percentUsed", { percent }));
  const bar = usageBar(percent, over);
  $("usage-bar-fill").style.width = `${bar.within}%`;
  $("usage-bar-over").style.width = `${bar.beyond}%`;
  $("usage-bar").setAttribute("aria-valuenow", percent === null ? "100" : String(percent));
  $("usage-bar").classList.toggle("warn", bar.warn);
  $("overage-box").hidden = !over;
  setValue("overage-credits", billing.overage_credits, formatDecimal(billing.overage_credits));
  setValue("overage-amount", billing.overage_amount, formatMoney(billing.overage_amount, billing.currency));
  const alerts = $("alerts");
  alerts.replaceChildren();
  for (const alert of billing.alerts || []) {
    const item = document.createElement("li");
    item.textContent = t("alertFired", { threshold: alert.threshold_percent, date: localDate(alert.crossed_at, period.tz) });
    alerts.append(item);
  }
}
