// The sidebar: conversations (the web chat's threads: each its own agent session), new, rename, delete, search.

import { $, api, el, human, newId, showError } from "./util.js";
import { openConversation, state } from "./chat.js";
import { icon } from "./icons.js";

let conversations = [];
let confirming = null; // the conversation whose delete waits for a second press

export async function load() {
  const data = await api("GET", "/api/chat/conversations");
  conversations = data.conversations;
  render();
}

function current(id) { return (state.thread || "main") === id; }

function render() {
  $("conversations").replaceChildren(...conversations.map((c) => {
    const item = el("li", { class: current(c.id) ? "current" : "", "data-conversation": c.id });
    const open = el("button", { type: "button", class: "open", "aria-current": current(c.id) ? "page" : null,
                                onclick: () => select(c.id) },
      el("span", { class: "name" }, c.title), el("span", { class: "when" }, c.updated_at ? human(c.updated_at) : ""));
    const actions = el("span", { class: "actions" },
      el("button", { type: "button", class: "icon rename", "aria-label": `Rename ${c.title}`, title: "Rename",
                     onclick: () => rename(item, c) }, icon("pencil")));
    if (!c.main) {
      const sure = confirming === c.id;
      actions.append(el("button", { type: "button", class: `icon delete${sure ? " danger" : ""}`,
        "aria-label": sure ? `Press again to delete ${c.title}` : `Delete ${c.title}`,
        title: sure ? "Press again to delete" : "Delete", onclick: () => remove(c) }, sure ? "Delete?" : icon("trash")));
    }
    item.append(open, actions);
    return item;
  }));
}

export async function select(id) {
  closeDrawer();
  $("search").value = "";
  $("search-results").hidden = true;
  $("conversations").hidden = false;
  try {
    await openConversation(id === "main" ? null : id);
  } catch (error) {
    showError(error.message);
  }
  render();
  $("text").focus();
}

export async function create() {
  // The id is made here, so a new chat works even while the host is down (it is created with the first message).
  const conversation = { id: newId("c", 12), title: "New chat", updated_at: Date.now() / 1000 };
  try { Object.assign(conversation, (await api("POST", "/api/chat/conversations", {})).conversation); }
  catch { /* offline: made on the host with its first message */ }
  if (!conversations.some((c) => c.id === conversation.id)) conversations.splice(1, 0, conversation);
  await select(conversation.id);
}

function rename(item, c) {
  const input = el("input", { value: c.title, "aria-label": "New name", maxlength: "120" });
  const form = el("form", { class: "rename-form" }, input,
    el("button", { type: "submit", class: "small primary" }, "Save"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const data = await api("PATCH", `/api/chat/conversations/${encodeURIComponent(c.id)}`, { title: input.value });
      Object.assign(c, data.conversation);
      if (current(c.id)) $("title").textContent = c.title;
    } catch (error) { showError(error.message); }
    render();
  });
  input.addEventListener("keydown", (event) => { if (event.key === "Escape") render(); });
  item.replaceChildren(form);
  input.focus();
  input.select();
}

async function remove(c) {
  if (confirming !== c.id) { confirming = c.id; render(); return; }
  confirming = null;
  try {
    await api("DELETE", `/api/chat/conversations/${encodeURIComponent(c.id)}`);
  } catch (error) { showError(error.message); }
  conversations = conversations.filter((x) => x.id !== c.id);
  if (current(c.id)) await select("main");
  render();
}

let searchTimer = null;
async function search() {
  const query = $("search").value.trim();
  if (!query) { $("search-results").hidden = true; $("conversations").hidden = false; return; }
  const data = await api("GET", `/api/chat/conversations?q=${encodeURIComponent(query)}`);
  const results = data.results.length ? data.results.map((r) => el("li", {},
    el("button", { type: "button", class: "open", onclick: () => select(r.conversation) },
      el("span", { class: "name" }, r.title), el("span", { class: "snippet" }, r.snippet))))
    : [el("li", { class: "empty" }, el("span", { class: "snippet" }, "Nothing found."))];
  $("search-results").replaceChildren(...results);
  $("search-results").hidden = false;
  $("conversations").hidden = true;
}

export function closeDrawer() {
  $("sidebar").classList.remove("open");
  $("scrim").hidden = true;
  $("menu").setAttribute("aria-expanded", "false");
}

export function setup(live) {
  live.on("conversation", (event) => {
    if (event.deleted) conversations = conversations.filter((c) => c.id !== event.deleted);
    else {
      const known = conversations.find((c) => c.id === event.conversation.id);
      if (known) Object.assign(known, event.conversation); else conversations.splice(1, 0, event.conversation);
      if (current(event.conversation.id)) $("title").textContent = event.conversation.title;
    }
    render();
  });
  state.onActivity = () => load().catch(() => {});
  $("new-chat").addEventListener("click", create);
  $("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(search, 200); });
  $("menu").addEventListener("click", () => {
    const open = !$("sidebar").classList.contains("open");
    $("sidebar").classList.toggle("open", open);
    $("scrim").hidden = !open;
    $("menu").setAttribute("aria-expanded", String(open));
    if (open) $("new-chat").focus();
  });
  $("scrim").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k") { event.preventDefault(); $("search").focus(); }
    if (event.key === "Escape" && $("sidebar").classList.contains("open")) closeDrawer();
  });
}
