// CSV export of the per-app table as shown: the shown order, the API's exact decimal strings
// (never re-summed: the total row is the answer's own total), shares to 2 decimals.
import { appShare, sortApps } from "./apps.js";
import { isZero } from "./format.js";
import { lastDay } from "./dates.js";

export const HEADER = ["app_id", "calls", "credits", "share_percent"];

/** One field, quoted when it holds a quote, a comma or a line break (RFC 4180). */
export function csvField(value) {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** Rows as CSV text, CRLF line ends, a final line end. */
export function csvText(rows) {
  return rows.map((row) => row.map(csvField).join(",")).join("\r\n") + "\r\n";
}

/** The export's rows: the header, one row per app in the table's order, the total. */
export function usageRows(answer, sort) {
  const total = answer.total;
  const rows = [HEADER];
  for (const app of sortApps(answer.apps || [], sort)) {
    rows.push([app.app_id, app.calls, app.credits, appShare(app, total, 2)]);
  }
  rows.push(["(total)", total.calls, total.credits, isZero(total.credits) ? "0.00" : "100.00"]);
  return rows;
}

/** "creditflow-acme-2025-03-01-to-2025-03-31.csv" (the last day inclusive, as the page shows). */
export function csvFileName(account, range) {
  return `creditflow-${account}-${range.fromDate.slice(0, 10)}-to-${lastDay(range.toDate)}.csv`;
}

/** Hand the text to the browser as a download. */
export function download(text, fileName) {
  const blob = new Blob([text], { type: "text/csv;charset=utf-8" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}
