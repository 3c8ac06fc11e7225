// One message as the page shows it: who, the body (host-rendered, safe HTML), files, cards, time and state.

import { icon } from "./icons.js";
import { clock, el, timeEl } from "./util.js";

// Owner messages only move forward: a late "stored" never hides "done" (the ✓ race).
export const RANK = { sending: 0, queued: 0, stored: 1, working: 2, done: 3, failed: 3, rejected: 3 };
const LABEL = {
  sending: "Sending…", queued: "Waiting for the connection: sends when it is back", stored: "Sent",
  working: "Working…", done: "Answered ✓", failed: "Failed", rejected: "Not accepted",
};

export function later(a, b) {
  return (RANK[b] ?? 0) > (RANK[a] ?? 0) ? b : a;
}

/** Copy buttons on code blocks, after the host's HTML is in place. */
function decorate(body) {
  for (const pre of body.querySelectorAll("pre")) {
    const code = pre.querySelector("code") || pre;
    const copy = el("button", { type: "button", class: "copy", "aria-label": "Copy the code" }, "Copy");
    copy.addEventListener("click", async () => {
      try { await navigator.clipboard.writeText(code.textContent); copy.textContent = "Copied"; }
      catch { copy.textContent = "Select and copy"; }
      setTimeout(() => { copy.textContent = "Copy"; }, 1500);
    });
    pre.append(copy);
  }
}

export function body(html) {
  const node = el("div", { class: "body" });
  node.innerHTML = html; // rendered by the host from Markdown: raw HTML off, safe links only (web_html.py)
  decorate(node);
  return node;
}

/** ctx: { assistant, press(m, label), openForm(url), retry(m) } */
export function renderMessage(m, ctx) {
  const role = m.author === "owner" ? "owner" : m.kind === "system" ? "system" : "assistant";
  const who = role === "owner" ? "You" : role === "system" ? "NanoClaw" : ctx.assistant;
  const node = el("article", { class: `msg ${role}`, "data-id": m.id, "aria-label": `${who}, ${clock(m.created_at)}` });
  if (m.pending) node.classList.add("pending");
  node.append(el("div", { class: "who" }, who));
  if (m.title) node.append(el("div", { class: "title" }, m.title));
  if (m.html) node.append(body(m.html));
  if (m.file_id) node.append(fileBlock(m));
  else if (m.local_files && m.local_files.length) node.append(el("div", { class: "file" }, icon("clip"), ` ${m.local_files.join(", ")}`));
  if (m.buttons && m.buttons.length) node.append(cardButtons(m, ctx));
  if (m.form_url && !m.closed) {
    node.append(el("div", { class: "buttons" }, el("button", { type: "button", class: "open-form primary",
      onclick: () => ctx.openForm(m.form_url) }, "Enter credential…")));
  }
  if (m.closed) node.append(el("div", { class: "outcome", role: "note" }, m.closed));
  node.append(meta(m, ctx));
  return node;
}

function fileBlock(m) {
  const url = `/api/chat/files/${encodeURIComponent(m.file_id)}`;
  const box = el("div", { class: "file" });
  if (m.preview) {
    box.append(el("a", { href: `${url}?inline=1`, target: "_blank", rel: "noopener" },
      el("img", { class: "preview", src: `${url}?inline=1`, alt: m.file_name || "image", loading: "lazy" })));
  }
  box.append(icon("file"), " ", el("a", { href: url, download: m.file_name || "file" }, m.file_name || "file"));
  return box;
}

function cardButtons(m, ctx) {
  const row = el("div", { class: "buttons", role: "group", "aria-label": m.title || "Choices" });
  const done = Boolean(m.answer || m.closed);
  for (const label of m.buttons) {
    const button = el("button", { type: "button", onclick: () => ctx.press(m, label, button) }, label);
    if (done) button.disabled = true;
    if (m.answer === label) { button.classList.add("chosen"); button.setAttribute("aria-pressed", "true"); }
    row.append(button);
  }
  return row;
}

function meta(m, ctx) {
  const box = el("div", { class: "meta" });
  box.append(timeEl(m.created_at, clock(m.created_at)));
  if (m.reactions && m.reactions.length) box.append(el("span", { class: "reactions" }, m.reactions.join(" ")));
  if (m.edited) box.append(el("span", {}, "(edited)"));
  if (m.author === "owner" && m.status) {
    box.append(el("span", { class: "status", "data-status": m.status }, LABEL[m.status] || m.status));
    if (m.status === "queued" || m.status === "failed_send") {
      box.append(el("button", { type: "button", class: "link retry", onclick: () => ctx.retry(m) }, "Send now"));
    }
  }
  return box;
}

/** The reply being written: a bubble that grows; the final message takes its place. */
export function renderPartial(streamId, html, assistant) {
  const node = el("article", { class: "msg assistant streaming", "data-stream": streamId, "aria-busy": "true",
                               "aria-label": `${assistant} is writing` });
  node.append(el("div", { class: "who" }, assistant), body(html));
  return node;
}
