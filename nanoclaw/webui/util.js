// Small helpers shared by the page's modules: DOM building, the JSON API, human times, ids.
// Text is always set with textContent; only message HTML rendered (and made safe) by the host is set as HTML.

export const $ = (id) => document.getElementById(id);
export const csrf = () => (document.cookie.match(/(?:^|; )nanoclaw_csrf=([^;]+)/) || [])[1] || "";

/** A network failure (host down, no connection), as opposed to a refusal the host explained. */
export class OfflineError extends Error {}

export async function api(method, path, body) {
  const headers = { "X-CSRF-Token": csrf() };
  let payload = body;
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch (error) {
    throw new OfflineError("The assistant's host cannot be reached right now.");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.error || `${response.status} ${response.statusText}`);
    error.status = response.status;
    error.data = data;
    throw error;
  }
  return data;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

/** "just now", "2 min ago", "in 3 h", "yesterday", or a date: seconds since the epoch against now. */
export function human(seconds, now = Date.now() / 1000) {
  if (!seconds) return "";
  const diff = seconds - now;
  const past = diff < 0;
  const d = Math.abs(diff);
  let amount;
  if (d < 45) return past ? "just now" : "in a moment";
  if (d < 3600) amount = `${Math.max(1, Math.round(d / 60))} min`;
  else if (d < 86400) amount = `${Math.round(d / 3600)} h`;
  else if (d < 86400 * 7) amount = `${Math.round(d / 86400)} d`;
  else return new Date(seconds * 1000).toLocaleDateString();
  return past ? `${amount} ago` : `in ${amount}`;
}

/** The time of a message: "14:05" today, else a short date and time. */
export function clock(seconds) {
  const date = new Date(seconds * 1000);
  const today = new Date().toDateString() === date.toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return today ? time : `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

export function timeEl(seconds, text) {
  const iso = new Date(seconds * 1000).toISOString();
  return el("time", { datetime: iso, title: new Date(seconds * 1000).toLocaleString() }, text);
}

export function newId(prefix = "", length = 16) {
  const bytes = crypto.getRandomValues(new Uint8Array(length / 2));
  return prefix + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function showError(text) {
  $("error").textContent = text || "";
  $("error").hidden = !text;
}
