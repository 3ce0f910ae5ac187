// Small helpers every page uses: building elements, showing errors in words,
// formatting numbers and dates, and the page's start (key check, sign-out).

import { ApiProblem, app, forgetKey, requireKey } from "./api.js";

/** An element: `h("a", {href: "/x", class: "button"}, "text", child)`. `on*` attributes are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const $ = (selector) => document.querySelector(selector);

/** Show `error` (an ApiProblem, an Error or a string) in the page's alert box, and focus it. */
export function showError(error, { focus = true } = {}) {
  const box = $("#alert");
  let message = typeof error === "string" ? error : error && error.message;
  if (!(error instanceof ApiProblem) && typeof error !== "string") {
    // Never a stack trace: a programming error is reported as such, in one sentence.
    console.error(error);
    message = "Something went wrong in this page. Reload it and try again.";
  }
  box.className = "alert";
  box.replaceChildren(message);
  if (error instanceof ApiProblem && error.status === 401) {
    box.append(" ", h("a", { href: `${app}/signin` }, "Sign in"));
  }
  box.hidden = false;
  if (focus) box.focus();
}

/** A short success message in the alert box (announced, not focused). */
export function showOk(message) {
  const box = $("#alert");
  box.className = "alert ok";
  box.replaceChildren(message);
  box.hidden = false;
}

export function clearAlert() {
  const box = $("#alert");
  box.hidden = true;
  box.replaceChildren();
}

/** Say something to screen readers without moving focus. */
export function announce(message) {
  $("#status").textContent = message;
}

/** The words for a job error's code (from the server's list), with its own message. */
export function errorInWords(error) {
  if (!error) return "";
  let hints = {};
  try {
    hints = JSON.parse($("#error-hints").textContent || "{}");
  } catch {
    hints = {};
  }
  const hint = hints[error.code];
  const detail = error.message ? `The details: ${error.message}` : "";
  return [hint || "It failed.", detail].filter(Boolean).join(" ");
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, String(status).replace("_", " "));
}

export function fmtDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

export function fmtSeconds(s) {
  const total = Math.round(Number(s) || 0);
  const m = Math.floor(total / 60);
  const sec = total % 60;
  if (m >= 60) return `${Math.floor(m / 60)} h ${m % 60} min`;
  return m ? `${m} min ${sec} s` : `${sec} s`;
}

export function fmtMoney(usd) {
  const n = Number(usd) || 0;
  return `$${n < 0.01 && n > 0 ? n.toFixed(4) : n.toFixed(2)}`;
}

export function fmtBytes(n) {
  const b = Number(n) || 0;
  if (b >= 1 << 20) return `${(b / (1 << 20)).toFixed(1)} MiB`;
  if (b >= 1024) return `${(b / 1024).toFixed(1)} KiB`;
  return `${b} bytes`;
}

/** A table cell with its column name (shown as a label at a phone's width). */
export function td(label, ...children) {
  return h("td", { "data-label": label }, ...children);
}

/** Rows of `<dt>`/`<dd>` for a `<dl>`, skipping empty values. */
export function detailRows(pairs) {
  const out = [];
  for (const [name, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    out.push(h("dt", {}, name), h("dd", {}, value));
  }
  return out;
}

/**
 * Start a signed-in page: check the key, wire the sign-out button, run `main`,
 * and report whatever it throws in words.
 */
export function start(main) {
  try {
    requireKey();
  } catch {
    return;
  }
  const out = $("#signout");
  if (out) {
    out.hidden = false;
    out.addEventListener("click", () => {
      forgetKey();
      location.assign(`${app}/signin?signed_out=1`);
    });
  }
  Promise.resolve()
    .then(main)
    .catch((e) => showError(e));
}

/** Run `fn` (async) for a button click: disabled while it runs, errors in the alert box. */
export function onClick(button, fn) {
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await fn(event);
    } catch (e) {
      showError(e);
    } finally {
      button.disabled = false;
    }
  });
}

/** Like onClick, for a form's submit. */
export function onSubmit(form, fn) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll("button[type=submit]");
    buttons.forEach((b) => (b.disabled = true));
    clearAlert();
    try {
      await fn(event);
    } catch (e) {
      showError(e);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });
}
