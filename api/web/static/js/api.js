// Calls to shoal's /v1 API with the API key the user signed in with.
// The key is kept in this tab's sessionStorage and sent as a Bearer token;
// every failure becomes an ApiProblem whose message is a sentence for people.

const KEY = "shoal.apiKey";

/** The server's root path (empty unless the API is served under a prefix). */
export const root = document.body.dataset.root || "";
/** The app's own base address. */
export const app = `${root}/app`;

/** An answer other than success, or no answer at all, in words. */
export class ApiProblem extends Error {
  constructor(status, code, message, field = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

const WORDS = {
  400: "The server could not understand the request.",
  401: "That API key was not accepted. Check it and sign in again.",
  403: "This API key may not do that.",
  404: "Not found: it may have expired, or it belongs to another tenant.",
  409: "That cannot be done in its current state.",
  413: "That is too large for this server.",
  429: "Too many requests just now. Wait a moment and try again.",
  500: "The server ran into a problem. Try again; if it keeps happening, tell your operator.",
  502: "The server is not reachable through its proxy just now. Try again shortly.",
  503: "A part of the service (Redis, the queue or storage) is down. Try again shortly.",
  504: "The server took too long to answer. Try again shortly.",
};

/** A random Idempotency-Key, so a repeated submit never makes a second job. */
export function idempotencyKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

/** The key, or off to the sign-in page (coming back here afterwards). */
export function requireKey() {
  const key = getKey();
  if (!key) {
    const next = encodeURIComponent(location.pathname + location.search);
    location.replace(`${app}/signin?next=${next}`);
    throw new ApiProblem(401, "signed_out", "Signed out.");
  }
  return key;
}

function sentence(text) {
  const t = String(text).trim();
  if (!t) return t;
  const first = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

/** The ApiProblem for an answer with status `status` and JSON body `data` (may be null). */
export function problemOf(status, data) {
  const err = data && typeof data === "object" ? data.error : null;
  if (status === 401) return new ApiProblem(401, "unauthorized", WORDS[401]);
  if (err && typeof err.message === "string" && err.message) {
    const where = err.field && !err.message.includes(err.field) ? ` (${err.field})` : "";
    return new ApiProblem(status, err.code || `http_${status}`, sentence(err.message + where), err.field);
  }
  const words = WORDS[status] || `The server answered with an error (HTTP ${status}).`;
  return new ApiProblem(status, `http_${status}`, words);
}

const UNREACHABLE = "The server could not be reached. Check that shoal is running and try again.";

function headers(extra = {}) {
  return { Authorization: `Bearer ${getKey() || ""}`, Accept: "application/json", ...extra };
}

function address(path, query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const q = params.toString();
  return `${root}${path}${q ? `?${q}` : ""}`;
}

/**
 * One API call. `json` is sent as a JSON body, `form` (FormData) as multipart.
 * Resolves to the parsed answer (null for 204); rejects with an ApiProblem.
 */
export async function call(method, path, { json, form, query, signal, extraHeaders } = {}) {
  const h = headers(extraHeaders);
  let body;
  if (json !== undefined) {
    h["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  let response;
  try {
    response = await fetch(address(path, query), { method, headers: h, body, signal });
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    throw new ApiProblem(0, "unreachable", UNREACHABLE);
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw problemOf(response.status, data);
  return data;
}

/** The text of `path` (not JSON), e.g. Prometheus metrics; no key needed but sent anyway. */
export async function text(path) {
  let response;
  try {
    response = await fetch(address(path), { headers: headers({ Accept: "text/plain" }) });
  } catch {
    throw new ApiProblem(0, "unreachable", UNREACHABLE);
  }
  if (!response.ok) throw problemOf(response.status, null);
  return response.text();
}

/**
 * Follow a job's Server-Sent Events (GET /v1/jobs/{id}/events) until the stream ends.
 * EventSource cannot send an Authorization header, so the stream is read with fetch.
 * `onEvent(name, data)` gets each event; `signal` stops it.
 */
export async function followJob(jobId, onEvent, signal) {
  let response;
  try {
    response = await fetch(address(`/v1/jobs/${encodeURIComponent(jobId)}/events`), {
      headers: headers({ Accept: "text/event-stream" }),
      signal,
    });
  } catch (e) {
    if (e && e.name === "AbortError") return;
    throw new ApiProblem(0, "unreachable", UNREACHABLE);
  }
  if (!response.ok) {
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    throw problemOf(response.status, data);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        dispatch(block, onEvent);
      }
    }
  } catch (e) {
    if (e && e.name === "AbortError") return;
    throw new ApiProblem(0, "stream_lost", "The live updates stopped; reload the page to resume.");
  }
}

function dispatch(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? "" : line.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  try {
    onEvent(name, JSON.parse(data.join("\n")));
  } catch {
    // an event we cannot read is skipped; the next status event carries the whole job
  }
}
