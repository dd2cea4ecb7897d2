// Calendar dates (YYYY-MM-DD), time zones and the windows of a range. A range is half-open,
// as the API's is: {from, to} are dates or instants; {fromDate, toDate} the calendar dates the
// page shows, toDate exclusive (the page's "To" field shows the day before it).

const DAY_MS = 86400000;

/** "2025-03-01" -> that day's UTC midnight, a Date used only for calendar arithmetic. */
export function parseDate(text) {
  const [y, m, d] = text.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d));
}

/** A Date's UTC calendar date, "YYYY-MM-DD". */
export function formatDate(date) {
  return date.toISOString().slice(0, 10);
}

/** The calendar date `days` after (or before) a date. */
export function addDays(text, days) {
  const date = parseDate(text);
  date.setUTCDate(date.getUTCDate() + days);
  return formatDate(date);
}

/** The first day of the month after a date's month. */
export function nextMonth(text) {
  const date = parseDate(text.slice(0, 8) + "01");
  date.setUTCMonth(date.getUTCMonth() + 1);
  return formatDate(date);
}

/** The calendar date in a time zone at an instant (now by default). */
export function todayIn(tz, when = new Date()) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: tz,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  }).formatToParts(when);
  const get = (type) => parts.find((part) => part.type === type).value;
  return `${get("year")}-${get("month")}-${get("day")}`;
}

/** The local calendar date of an ISO instant; an unparsable one keeps its first 10 characters. */
export function localDate(instant, tz) {
  const date = new Date(instant);
  return Number.isNaN(date.getTime()) ? String(instant).slice(0, 10) : todayIn(tz, date);
}

/** Whether the browser knows an IANA time zone name. */
export function validZone(tz) {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The chart's window for a range: per hour up to 3 days, per day up to 400, else per month. */
export function windowFor(from, to) {
  const days = (Date.parse(to) - Date.parse(from)) / DAY_MS;
  if (days <= 3) return "hour";
  return days <= 400 ? "day" : "month";
}

/** The last day a range covers (the day before its exclusive end). */
export function lastDay(toDate) {
  return addDays(toDate.slice(0, 10), -1);
}

/** The dates of a preset that needs no billing period: last7, last30, month; else null. */
export function presetDays(preset, today) {
  if (preset === "last7") return { from: addDays(today, -6), to: addDays(today, 1) };
  if (preset === "last30") return { from: addDays(today, -29), to: addDays(today, 1) };
  if (preset !== "month") return null;
  const first = today.slice(0, 8) + "01";
  return { from: first, to: nextMonth(first) };
}

/** The range of a billing period: the API's instants, the period's calendar dates. */
export function periodRange(period) {
  return { from: period.start_at, to: period.end_at, fromDate: period.start, toDate: period.end };
}

/** The range of the custom form's inclusive dates, or null when the end is before the start. */
export function customRange(first, last) {
  if (!first || !last || last < first) return null;
  const to = addDays(last, 1);
  return { preset: "custom", from: first, to, fromDate: first, toDate: to };
}

/** "2025-03-01 – 2025-03-31 (Asia/Seoul)". */
export function rangeLabel(range, tz) {
  return `${range.fromDate.slice(0, 10)} – ${lastDay(range.toDate)} (${tz})`;
}
