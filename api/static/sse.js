// The usage stream's transport: a text/event-stream parser and a reconnecting reader. The page
// reads the stream with fetch + ReadableStream because EventSource cannot send a bearer token.
import { ApiError, errorOf } from "./api.js";

export const WATCHDOG_MS = 15000; // the stream re-sends at least every 5 s; silence this long = dead
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 10000;
const FINAL = [400, 401, 403, 404]; // answers a retry cannot change

/** An incremental event-stream parser: push decoded text, get the complete messages so far. */
export class SseParser {
  #buffer = "";
  #afterCr = false;

  /** The {event, data} messages completed by this chunk (data lines joined by "\n"). */
  push(text) {
    // A CR ends a line at once; a LF opening the next chunk is then the rest of that CRLF.
    const chunk = this.#afterCr && text.startsWith("\n") ? text.slice(1) : text;
    if (text) this.#afterCr = chunk.endsWith("\r");
    this.#buffer += chunk.replace(/\r\n?/g, "\n");
    const messages = [];
    let end;
    while ((end = this.#buffer.indexOf("\n\n")) >= 0) {
      const message = parseBlock(this.#buffer.slice(0, end));
      this.#buffer = this.#buffer.slice(end + 2);
      if (message) messages.push(message);
    }
    return messages;
  }
}

function parseBlock(block) {
  let event = "message";
  const data = [];
  // A comment (": keep-alive") has an empty field name: ignored like any field but these two.
  for (const line of block.split("\n")) {
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let text = colon < 0 ? "" : line.slice(colon + 1);
    if (text.startsWith(" ")) text = text.slice(1);
    if (field === "event") event = text;
    else if (field === "data") data.push(text);
  }
  return data.length ? { event, data: data.join("\n") } : null;
}

/** Read a text/event-stream body to its end, calling onMessage(event, data) per message. */
export async function readSse(body, onMessage) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const { event, data } of parser.push(decoder.decode(value, { stream: true }))) {
        onMessage(event, data);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Follow a stream until closed, reconnecting with backoff (0.5 s doubling to 10 s) after an
 * end, a network error, a 5xx or WATCHDOG_MS of silence. A 400/401/403/404 ends it through
 * onError. Hooks: onEvent(event, json) per message, onLive(bool) as messages come and go,
 * onUnavailable() while the view is rebuilding (an "unavailable" message or a 503).
 * fetchImpl and wait are the network and the clock, replaceable in tests.
 */
export function openStream({ url, token, onEvent, onError, onLive, onUnavailable, fetchImpl = fetch, wait = pause }) {
  const outer = new AbortController();
  const closed = () => outer.signal.aborted;
  const setLive = (live) => {
    if (!closed()) onLive(live);
  };
  const done = (async () => {
    let backoff = FIRST_BACKOFF_MS;
    while (!closed()) {
      const inner = new AbortController();
      const stop = () => inner.abort();
      outer.signal.addEventListener("abort", stop);
      let watchdog = setTimeout(stop, WATCHDOG_MS);
      try {
        const response = await fetchImpl(url, {
          headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
          signal: inner.signal,
          cache: "no-store",
        });
        if (!response.ok) {
          const error = await errorOf(response);
          if (FINAL.includes(error.status)) {
            if (!closed()) onError(error);
            return;
          }
          throw error;
        }
        await readSse(response.body, (event, data) => {
          if (closed()) return;
          clearTimeout(watchdog);
          watchdog = setTimeout(stop, WATCHDOG_MS);
          backoff = FIRST_BACKOFF_MS;
          if (event === "unavailable") {
            setLive(false);
            onUnavailable();
            return;
          }
          setLive(true);
          onEvent(event, JSON.parse(data));
        });
      } catch (error) {
        if (closed()) return;
        if (error instanceof ApiError && error.status === 503) onUnavailable();
      } finally {
        clearTimeout(watchdog);
        outer.signal.removeEventListener("abort", stop);
      }
      setLive(false);
      await wait(backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  })();
  return { close: () => outer.abort(), done };
}
