// Exact decimal strings (credits, amounts) and how the page shows them.
//
// Money rule: credits and amounts arrive from the API as decimal strings with at most 6
// fractional digits (DESIGN.md), and the page shows those digits unchanged, only regrouped with
// thousands separators. Comparisons and shares run on BigInt micro-credits, so no value ever
// passes through a binary float; floats are left to geometry (bar heights and widths).

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;
const MICRO_DIGITS = 6;

/** "1234567.5" -> "1,234,567.5" (a string stays a string: never through a float). */
export function formatDecimal(text) {
  const match = DECIMAL.exec(String(text));
  if (!match) return String(text);
  const whole = match[2].replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return match[1] + whole + (match[3] ? `.${match[3]}` : "");
}

/** A count (calls, pending events), grouped like a decimal. */
export function formatInt(value) {
  return formatDecimal(String(value));
}

/** "1234.5", "USD" -> "1,234.5 USD". */
export function formatMoney(amount, currency) {
  return `${formatDecimal(amount)} ${currency}`;
}

/**
 * Exact micro-credits of a decimal string, as a BigInt. Anything that is not a plain decimal
 * with at most 6 fractional digits is refused rather than rounded: a wrong order or share
 * would be silent, an exception is not.
 */
export function toMicro(text) {
  const match = DECIMAL.exec(String(text));
  const fraction = match ? (match[3] ?? "") : "";
  if (!match || fraction.length > MICRO_DIGITS) {
    throw new TypeError(`not a credit amount: ${String(text).slice(0, 40)}`);
  }
  const micro = BigInt(match[2] + fraction.padEnd(MICRO_DIGITS, "0"));
  return match[1] ? -micro : micro;
}

/** -1, 0 or 1 as the decimal string a is below, equal to or above b ("1.50" equals "1.5"). */
export function compareDecimal(a, b) {
  const x = toMicro(a);
  const y = toMicro(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Whether a decimal string is zero ("0", "0.000", "-0"). */
export function isZero(text) {
  return /^-?0(\.0*)?$/.test(String(text));
}

/**
 * part / whole as a percentage with `digits` decimals, rounded half up, as a string ("12.35");
 * "0.00" when whole is zero. Computed on BigInt micro-credits, so it is exact at any size.
 */
export function sharePercent(part, whole, digits = 2) {
  const numerator = toMicro(part);
  const denominator = toMicro(whole);
  const scale = 10n ** BigInt(digits);
  if (denominator === 0n) return fixed(0n, digits);
  const negative = numerator < 0n !== denominator < 0n && numerator !== 0n;
  const a = numerator < 0n ? -numerator : numerator;
  const b = denominator < 0n ? -denominator : denominator;
  const scaled = (a * 100n * scale * 2n + b) / (2n * b);
  return (negative ? "-" : "") + fixed(scaled, digits);
}

function fixed(scaled, digits) {
  if (digits === 0) return scaled.toString();
  const text = scaled.toString().padStart(digits + 1, "0");
  return `${text.slice(0, -digits)}.${text.slice(-digits)}`;
}
