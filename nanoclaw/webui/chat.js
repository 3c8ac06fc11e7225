// The open conversation: its messages, the reply being written, stop, cards, and sending that never loses
// a message (typed while the host is down: queued, sent on reconnect, stored once).

import { $, OfflineError, api, el, newId, showError } from "./util.js";
import { later, renderMessage, renderPartial } from "./render.js";
import * as outbox from "./outbox.js";

export const state = { thread: null, assistant: "Assistant", messages: new Map(), working: false, files: [],
                       onActivity: () => {} };

const ctx = {
  get assistant() { return state.assistant; },
  press, openForm, retry: (m) => flushOutbox(m.client_id),
};

const list = () => $("messages");
const nodeOf = (id) => list().querySelector(`[data-id="${CSS.escape(id)}"]`);

function atBottom() {
  const box = list();
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

function place(node, old) {
  const stick = atBottom();
  if (old) old.replaceWith(node); else list().append(node);
  if (stick || !old) list().scrollTop = list().scrollHeight;
  updateGreeting();
}

/** A message from the host (history, live event or an answer to a post), merged with what the page has. */
export function upsert(m) {
  if ((m.thread_id || null) !== state.thread) { state.onActivity(m.thread_id); return; }
  const localId = m.client_id ? `local-${m.client_id}` : null;
  const known = state.messages.get(m.id) || (localId && state.messages.get(localId));
  if (known && known.status) m.status = later(known.status, m.status);
  if (localId && state.messages.has(localId)) {
    state.messages.delete(localId);
    outbox.drop(m.client_id);
  }
  state.messages.set(m.id, m);
  const old = nodeOf(m.id) || (localId && nodeOf(localId)) ||
              (m.stream_id && list().querySelector(`[data-stream="${CSS.escape(m.stream_id)}"]`));
  place(renderMessage(m, ctx), old);
  if (m.stream_id) setWorking(state.working);
}

function showPartial(event) {
  if ((event.thread_id || null) !== state.thread) return;
  const old = list().querySelector(`[data-stream="${CSS.escape(event.stream_id)}"]`);
  if (event.end) { if (old) old.remove(); updateGreeting(); return; }
  if ([...state.messages.values()].some((m) => m.stream_id === event.stream_id)) return; // final already here
  place(renderPartial(event.stream_id, event.html, state.assistant), old);
  setWorking(true);
}

function setWorking(on) {
  state.working = on;
  const writing = Boolean(list().querySelector(".streaming"));
  $("stop").hidden = !(on || writing);
  $("send").hidden = !$("stop").hidden && !$("text").value.trim() && !state.files.length;
  $("typing").textContent = on && !writing ? `${state.assistant} is working…` : "";
  $("typing").hidden = !(on && !writing);
}

function updateGreeting() {
  const empty = !list().querySelector(".msg");
  $("greeting").hidden = !empty;
}

export async function openConversation(thread) {
  state.thread = thread || null;
  state.messages.clear();
  for (const node of list().querySelectorAll(".msg")) node.remove();
  showError("");
  setWorking(false);
  const data = await api("GET", `/api/chat/messages?thread=${encodeURIComponent(state.thread || "main")}`);
  state.assistant = data.assistant;
  $("greeting-title").textContent = `Hi! I'm ${data.assistant}. How can I help?`;
  $("text").placeholder = `Message ${data.assistant}…`;
  $("title").textContent = data.conversation ? data.conversation.title : "New chat";
  document.title = `${$("title").textContent} · NanoClaw`;
  for (const m of data.messages) upsert(m);
  for (const p of data.partials) showPartial(p);
  for (const item of outbox.waiting()) if ((item.thread_id || null) === state.thread) showLocal(item, "queued");
  setWorking(data.working);
  updateGreeting();
  list().scrollTop = list().scrollHeight;
}

function showLocal(item, status) {
  const m = { id: `local-${item.client_id}`, client_id: item.client_id, author: "owner", kind: "chat", text: item.text,
              html: "", thread_id: item.thread_id, created_at: item.created_at, status, pending: true,
              local_files: item.files || [] };
  state.messages.set(m.id, m);
  const node = renderMessage(m, ctx);
  node.querySelector(".who").after(el("div", { class: "body plain" }, item.text));
  place(node, nodeOf(m.id));
}

export async function send(text, files = []) {
  if (!text.trim() && !files.length) return;
  const item = { client_id: newId("m"), text, thread_id: state.thread, created_at: Date.now() / 1000,
                 files: files.map((f) => f.name) };
  outbox.keep(item, files); // kept until the host has it: a crash or an outage loses nothing
  showLocal(item, "sending");
  await deliver(item, files);
}

async function deliver(item, files) {
  const form = new FormData();
  form.append("text", item.text);
  form.append("client_id", item.client_id);
  if (item.thread_id) form.append("thread_id", item.thread_id);
  for (const file of files) form.append("file", file, file.name);
  try {
    const data = await api("POST", "/api/chat/messages", form);
    outbox.drop(item.client_id);
    upsert(data.message);
    showError("");
    return true;
  } catch (error) {
    if (error instanceof OfflineError) {
      if (state.messages.has(`local-${item.client_id}`)) showLocal(item, "queued");
      return false;
    }
    outbox.drop(item.client_id); // refused with a reason: sending again would not help
    if (error.data && error.data.message) upsert(error.data.message);
    else if (state.messages.has(`local-${item.client_id}`)) showLocal(item, "rejected");
    showError(error.message);
    return true;
  }
}

/** Send what waited for the connection, oldest first (all of it, or the one asked for). */
export async function flushOutbox(only = null) {
  for (const item of outbox.waiting()) {
    if (only && item.client_id !== only) continue;
    if (!(await deliver(item, outbox.filesOf(item.client_id)))) break;
  }
}

export async function stop() {
  try { await api("POST", "/api/chat/stop", { thread_id: state.thread }); }
  catch (error) { showError(error.message); }
}

async function press(m, label, button) {
  for (const b of button.parentElement.querySelectorAll("button")) b.disabled = true;
  try {
    await api("POST", `/api/chat/cards/${encodeURIComponent(m.card_id)}`, { value: label });
  } catch (error) {
    showError(error.message);
    if (error.status !== 409) for (const b of button.parentElement.querySelectorAll("button")) b.disabled = false;
  }
}

function openForm(url) {
  $("modal-frame").src = url;
  $("modal").showModal();
}

function addFiles(files) {
  state.files.push(...files);
  renderAttachments();
}

function renderAttachments() {
  const box = $("attachments");
  box.replaceChildren(...state.files.map((file, i) => {
    const item = el("li", {});
    if (file.type.startsWith("image/")) item.append(el("img", { src: URL.createObjectURL(file), alt: "" }));
    item.append(el("span", { class: "name", title: file.name }, file.name),
      el("button", { type: "button", class: "icon", "aria-label": `Remove ${file.name}`,
                     onclick: () => { state.files.splice(i, 1); renderAttachments(); } }, "×"));
    return item;
  }));
  setWorking(state.working);
}

function grow() {
  const box = $("text");
  box.style.height = "auto";
  box.style.height = `${box.scrollHeight}px`;
}

export function setup(live) {
  live.on("message", (event) => upsert(event.message));
  live.on("partial", showPartial);
  live.on("typing", (event) => { if ((event.thread_id || null) === state.thread) setWorking(event.on); });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text").value;
    const files = state.files.splice(0);
    $("text").value = "";
    grow();
    renderAttachments();
    send(text, files);
    $("text").focus();
  });
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    } else if (event.key === "Escape" && !$("stop").hidden) {
      event.preventDefault();
      stop();
    }
  });
  $("text").addEventListener("input", () => { grow(); setWorking(state.working); });
  $("stop").addEventListener("click", () => { stop(); $("text").focus(); });
  $("file").addEventListener("change", () => { addFiles([...$("file").files]); $("file").value = ""; });
  const chat = $("chat");
  chat.addEventListener("dragover", (event) => { event.preventDefault(); $("drop").hidden = false; });
  chat.addEventListener("dragleave", (event) => { if (!chat.contains(event.relatedTarget)) $("drop").hidden = true; });
  chat.addEventListener("drop", (event) => {
    event.preventDefault();
    $("drop").hidden = true;
    addFiles([...event.dataTransfer.files]);
    $("text").focus();
  });
  for (const button of document.querySelectorAll(".suggestion")) {
    button.addEventListener("click", () => send(button.textContent));
  }
  $("modal-close").addEventListener("click", () => { $("modal").close(); $("modal-frame").src = "about:blank"; });
}
