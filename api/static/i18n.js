// Labels of the billing page in English and Korean, and the page's language (owned here: set by
// the page's language toggle, read by every label). `{name}` marks a value filled in at run time.
export const STRINGS = {
  en: {
    settings: "Settings",
    billing: "Billing",
    account: "Account",
    signOut: "Sign out",
    signInTitle: "Sign in to see your billing",
    signInHelp:
      "Paste an access token with read access to your account (read:<account>), a portal token, or an admin token. It is kept only for this browser session.",
    token: "Access token",
    signIn: "Sign in",
    signingIn: "Signing in…",
    plan: "Plan",
    planName: "{name} plan",
    contracted: "Contracted credits",
    paygRate: "Pay-as-you-go rate",
    perCredit: "{amount} per credit",
    billingPeriod: "Billing period",
    beyondAllotment: "Beyond the allotment",
    limitSoft: "Pay-as-you-go",
    limitHard: "Access stops (hard limit)",
    accessPaused: "Access is paused: the allotment is used up and this contract has a hard limit.",
    upgrade: "Upgrade / Contact us",
    noContract: "This account has no contract: usage is shown, billing is not.",
    usageThisPeriod: "Usage this period",
    of: "of",
    credits: "credits",
    remaining: "Remaining",
    overage: "Overage",
    percentUsed: "{percent}% used",
    syncedAgo: "synced {n} s ago",
    syncedJustNow: "synced just now",
    syncedUnknown: "sync time unknown",
    pending: "{n} pending",
    reconnecting: "reconnecting…",
    live: "Live",
    alertFired: "{threshold}% of the allotment reached on {date}",
    period: "Period",
    presetCurrent: "This period",
    presetPrevious: "Last period",
    presetLast7: "Last 7 days",
    presetLast30: "Last 30 days",
    presetMonth: "This month",
    from: "From",
    to: "To",
    apply: "Apply",
    timeZone: "Time zone",
    totalCredits: "Credits",
    totalCalls: "Calls",
    usageOverTime: "Usage over time",
    perDay: "credits per day",
    perHour: "credits per hour",
    perMonth: "credits per month",
    details: "Details",
    exportCsv: "Export CSV",
    colApp: "App",
    colCalls: "Calls",
    colCredits: "Credits",
    colShare: "Share",
    total: "Total",
    empty: "No usage in this period.",
    loading: "Loading…",
    footer: "Credits are exact: totals come from the API as decimal strings.",
    errUnauthorized: "This token is unknown or has expired. Sign in again.",
    errForbidden: "Access denied: this token cannot read account “{account}”.",
    errForbiddenAdmin: "Access denied: listing accounts needs the admin token.",
    errNoAccount: "This token cannot read any account.",
    errRebuilding: "The usage data is being rebuilt; retrying…",
    errNetwork: "Cannot reach the API; retrying…",
    errRange: "Pick a start date before the end date.",
    errTz: "Unknown time zone: {tz}",
    errGeneric: "Something went wrong: {message}",
    noPreviousPeriod: "There is no previous billing period.",
  },
  ko: {
    settings: "설정",
    billing: "결제",
    account: "계정",
    signOut: "로그아웃",
    signInTitle: "결제 정보를 보려면 로그인하세요",
    signInHelp:
      "계정 읽기 권한(read:<계정>)이 있는 액세스 토큰, 포털 토큰 또는 관리자 토큰을 붙여 넣으세요. 토큰은 이 브라우저 세션에만 보관됩니다.",
    token: "액세스 토큰",
    signIn: "로그인",
    signingIn: "로그인 중…",
    plan: "요금제",
    planName: "{name} 요금제",
    contracted: "계약 크레딧",
    paygRate: "초과분 종량제 요금",
    perCredit: "크레딧당 {amount}",
    billingPeriod: "결제 주기",
    beyondAllotment: "할당량 초과 시",
    limitSoft: "종량제 과금",
    limitHard: "사용 중지 (하드 리밋)",
    accessPaused: "할당량을 모두 사용하여 사용이 중지되었습니다 (하드 리밋 계약).",
    upgrade: "업그레이드 / 문의하기",
    noContract: "이 계정에는 계약이 없습니다. 사용량만 표시됩니다.",
    usageThisPeriod: "이번 결제 주기 사용량",
    of: "/",
    credits: "크레딧",
    remaining: "잔여",
    overage: "초과 사용",
    percentUsed: "{percent}% 사용",
    syncedAgo: "{n}초 전 동기화",
    syncedJustNow: "방금 동기화",
    syncedUnknown: "동기화 시각 알 수 없음",
    pending: "{n}건 대기 중",
    reconnecting: "다시 연결 중…",
    live: "실시간",
    alertFired: "{date}에 할당량의 {threshold}% 도달",
    period: "기간",
    presetCurrent: "이번 주기",
    presetPrevious: "지난 주기",
    presetLast7: "최근 7일",
    presetLast30: "최근 30일",
    presetMonth: "이번 달",
    from: "시작",
    to: "종료",
    apply: "적용",
    timeZone: "시간대",
    totalCredits: "크레딧",
    totalCalls: "호출 수",
    usageOverTime: "기간별 사용량",
    perDay: "일별 크레딧",
    perHour: "시간별 크레딧",
    perMonth: "월별 크레딧",
    details: "상세 내역",
    exportCsv: "CSV 내보내기",
    colApp: "앱",
    colCalls: "호출 수",
    colCredits: "크레딧",
    colShare: "비중",
    total: "합계",
    empty: "이 기간에는 사용량이 없습니다.",
    loading: "불러오는 중…",
    footer: "크레딧은 정확한 값입니다. 합계는 API가 10진수 문자열로 제공합니다.",
    errUnauthorized: "토큰이 유효하지 않거나 만료되었습니다. 다시 로그인하세요.",
    errForbidden: "접근 거부: 이 토큰으로는 “{account}” 계정을 조회할 수 없습니다.",
    errForbiddenAdmin: "접근 거부: 계정 목록은 관리자 토큰이 필요합니다.",
    errNoAccount: "이 토큰으로 조회할 수 있는 계정이 없습니다.",
    errRebuilding: "사용량 데이터를 다시 만드는 중입니다. 잠시 후 다시 시도합니다…",
    errNetwork: "API에 연결할 수 없습니다. 다시 시도하는 중…",
    errRange: "시작 날짜는 종료 날짜보다 앞이어야 합니다.",
    errTz: "알 수 없는 시간대: {tz}",
    errGeneric: "오류가 발생했습니다: {message}",
    noPreviousPeriod: "이전 결제 주기가 없습니다.",
  },
};

export const LANGS = Object.keys(STRINGS);

let current = "en";

/** The page's language ("en" or "ko"). */
export function lang() {
  return current;
}

/** Switch the page's language (an unknown one is refused: the labels would all be keys). */
export function setLang(next) {
  if (!STRINGS[next]) throw new RangeError(`unknown language: ${String(next).slice(0, 20)}`);
  current = next;
}

/** The first language: a saved choice if it is known, else Korean for a Korean browser. */
export function pickLang(saved, browserLanguage) {
  if (saved && STRINGS[saved]) return saved;
  return String(browserLanguage).startsWith("ko") ? "ko" : "en";
}

/** A label in a language (English, then the key, when missing), its {name} marks filled in. */
export function translate(language, key, vars = {}) {
  const text = STRINGS[language]?.[key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

/** A label in the page's language. */
export function t(key, vars = {}) {
  return translate(current, key, vars);
}
