// NanoClaw web chat and dashboard. Plain DOM: message HTML is rendered (and made safe) by the host;
// everything else is set with textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const csrf = (document.cookie.match(/(?:^|; )nanoclaw_csrf=([^;]+)/) || [])[1] || "";
const state = { messages: new Map(), thread: null, assistant: "Assistant", typing: {} };

async function api(method, path, body) {
  const headers = { "X-CSRF-Token": csrf };
  let payload = body;
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

// -- chat -------------------------------------------------------------------------------

function renderMessage(m) {
  const who = m.author === "owner" ? "You" : m.kind === "system" ? "NanoClaw" : state.assistant;
  const node = el("div", { class: `msg ${m.author === "owner" ? "owner" : m.kind === "system" ? "system" : "assistant"}`,
                           "data-id": m.id });
  if (m.status === "rejected") node.classList.add("rejected");
  node.append(el("div", { class: "who" }, who));
  if (m.title) node.append(el("div", { class: "title" }, m.title));
  const body = el("div", { class: "body" });
  body.innerHTML = m.html;  // rendered by the host from Markdown with raw HTML disabled
  node.append(body);
  if (m.file_id) {
    node.append(el("div", { class: "file" }, "📄 ",
      el("a", { href: `/api/chat/files/${encodeURIComponent(m.file_id)}`, download: m.file_name || "file" }, m.file_name || "file")));
  }
  if (m.buttons && m.buttons.length) {
    const row = el("div", { class: "buttons" });
    for (const label of m.buttons) {
      const button = el("button", { type: "button", onclick: () => press(m, label) }, label);
      if (m.answer) { button.disabled = true; if (m.answer === label) button.classList.add("chosen"); }
      row.append(button);
    }
    node.append(row);
  }
  if (m.form_url) {
    node.append(el("div", { class: "buttons" },
      el("button", { type: "button", class: "open-form", onclick: () => openModal(m.form_url) }, "Enter credential…")));
  }
  const meta = el("div", { class: "meta" });
  if (m.reactions && m.reactions.length) meta.append(el("span", { class: "reactions" }, m.reactions.join(" ")));
  if (m.edited) meta.append(el("span", {}, "(edited)"));
  if (m.author === "owner" && m.status) meta.append(el("span", { class: "status" }, m.status === "done" ? "✓" : m.status));
  if (!m.thread_id && m.kind !== "system") {
    const label = m.replies ? `${m.replies} in thread` : "Reply in thread";
    meta.append(el("a", { class: "open-thread", onclick: () => openThread(m.id) }, label));
  }
  node.append(meta);
  return node;
}

function listFor(threadId) { return threadId ? $("thread-messages") : $("messages"); }

function upsert(m) {
  const old = state.messages.get(m.id);
  if (old && m.replies === undefined) m.replies = old.replies;
  state.messages.set(m.id, m);
  if (m.thread_id && m.thread_id !== state.thread) {
    const root = state.messages.get(m.thread_id);  // count the reply under its root
    if (root && !old) { root.replies = (root.replies || 0) + 1; upsert(root); }
    return;
  }
  const list = listFor(m.thread_id);
  const existing = list.querySelector(`[data-id="${CSS.escape(m.id)}"]`);
  const node = renderMessage(m);
  if (existing) existing.replaceWith(node); else list.append(node);
  if (!existing) list.scrollTop = list.scrollHeight;
}

async function loadHistory(threadId) {
  const data = await api("GET", `/api/chat/messages${threadId ? `?thread=${encodeURIComponent(threadId)}` : ""}`);
  state.assistant = data.assistant;
  $("brand").textContent = `NanoClaw · ${data.assistant}`;
  listFor(threadId).replaceChildren();
  for (const m of data.messages) upsert(m);
}

async function send(textArea, threadId, fileInput) {
  const text = textArea.value;
  const files = fileInput ? [...fileInput.files] : [];
  if (!text.trim() && !files.length) return;
  const form = new FormData();
  form.append("text", text);
  if (threadId) form.append("thread_id", threadId);
  for (const file of files) form.append("file", file, file.name);
  textArea.value = "";
  if (fileInput) { fileInput.value = ""; $("files-chosen").textContent = ""; }
  try {
    const data = await api("POST", "/api/chat/messages", form);
    upsert(data.message);
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

async function press(m, label) {
  try { await api("POST", `/api/chat/cards/${encodeURIComponent(m.card_id)}`, { value: label }); }
  catch (error) { showError(error.message); }
}

function showError(text) { $("error").textContent = text; $("error").hidden = !text; }

async function openThread(id) {
  state.thread = id;
  $("thread").hidden = false;
  await loadHistory(id);
  $("thread-text").focus();
}

function showTyping(threadId, on) {
  const box = threadId ? $("thread-typing") : $("typing");
  if (threadId && threadId !== state.thread) return;
  box.textContent = `${state.assistant} is typing…`;
  box.hidden = !on;
}

function openModal(url) {
  $("modal-frame").src = url;
  $("modal").showModal();
}

function connect(delay = 500) {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/chat/events`);
  ws.onopen = () => { $("conn").textContent = "connected"; $("conn").classList.add("live"); delay = 500;
                      loadHistory(null).catch(showError); if (state.thread) loadHistory(state.thread).catch(showError); };
  ws.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.type === "message") upsert(data.message);
    else if (data.type === "typing") showTyping(data.thread_id, data.on);
  };
  ws.onclose = () => {
    $("conn").textContent = "reconnecting…"; $("conn").classList.remove("live");
    setTimeout(() => connect(Math.min(delay * 2, 15000)), delay);
  };
}

function submitOnEnter(textArea, form) {
  textArea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });
}

// -- dashboard ----------------------------------------------------------------------------

function table(headers, rows) {
  if (!rows.length) return el("p", { class: "empty" }, "None.");
  const t = el("table", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h))));
  for (const cells of rows) t.append(el("tr", {}, ...cells.map((c) => el("td", {}, c))));
  return t;
}

const when = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleString() : "");

function triggerEditor(w) {
  const select = el("select", { "data-wiring": w.id });
  for (const t of ["mention", "prefix", "always", "dm"]) {
    const option = el("option", { value: t }, t);
    if (t === w.trigger) option.selected = true;
    select.append(option);
  }
  const value = el("input", { value: w.trigger_value || "", placeholder: "prefix / word", size: 8 });
  const save = el("button", { type: "button", onclick: async () => {
    try { await api("POST", `/api/dashboard/wirings/${w.id}`, { trigger: select.value, trigger_value: value.value });
          save.textContent = "saved"; }
    catch (error) { save.textContent = error.message; }
  } }, "save");
  return el("span", {}, `→ ${w.group} `, select, " ", value, " ", save);
}

async function editMemory(group) {
  const data = await api("GET", `/api/dashboard/memory/${encodeURIComponent(group)}`);
  $("memory-title").textContent = `Memory of ${group} (CLAUDE.md)`;
  $("memory-text").value = data.text;
  $("memory-dialog").dataset.group = group;
  $("memory-dialog").showModal();
}

async function loadDashboard() {
  const d = await api("GET", "/api/dashboard");
  const s = d.status;
  $("onboarding").hidden = !d.onboarding.needs_model_key;
  if (!$("onboard-name").value) $("onboard-name").value = d.assistant;
  $("d-status").replaceChildren(table(["", ""], [
    ["Provider", s.provider], ["Runtime", s.runtime], ["Channels", s.channels.join(", ")],
    ["Runners", `${s.live_runners} live of ${s.max_sandboxes}`], ["Uptime", `${Math.round(s.uptime)} s`],
    ["Memory", `runners ${s.memory.runners_mb} MB · pool ${s.memory.pool_mb} MB (${s.pool.sandboxes.length} ready or warming) · budget ${s.memory.budget_mb} MB`],
  ]));
  $("d-groups").replaceChildren(table(["Group", "Model", "Memory"], [...d.groups, { id: "global", name: "Global" }].map((g) => [
    `${g.name || g.id}${g.admin && !/admin/i.test(g.name || "") ? " (admin)" : ""}`, g.provider ? `${g.provider} ${g.model}` : "",
    el("button", { type: "button", class: "edit-memory", onclick: () => editMemory(g.id) }, "edit"),
  ])));
  $("d-chats").replaceChildren(table(["Chat", "Name", "Policy", "Wirings"], d.chats.map((c) => [
    c.chat, c.name || "", c.policy, el("div", {}, ...(c.wirings.length ? c.wirings.map(triggerEditor) : ["unwired"])),
  ])));
  $("d-sessions").replaceChildren(table(["Session", "Group", "Chat", "Thread", "Runner", "Last active"], s.sessions.map((x) => [
    x.id, x.agent_group, x.chat, x.thread || "",
    x.runner_pid ? el("span", { class: "live-dot" },
      `● running (pid ${x.runner_pid}, ${x.runner_uptime} s, ${x.runner_rss_mb ?? "?"} MB)`) : "idle",
    when(x.last_active),
  ])));
  $("d-tasks").replaceChildren(table(["Task", "Group", "Schedule", "Status", "Next run", ""], d.tasks.map((t) => [
    t.prompt.slice(0, 80), t.group, t.schedule, t.status, t.next_run || "",
    el("button", { type: "button", class: "task-toggle", onclick: async () => {
      await api("POST", `/api/dashboard/tasks/${t.id}/${t.status === "paused" ? "resume" : "pause"}`);
      loadDashboard();
    } }, t.status === "paused" ? "resume" : "pause"),
  ])));
  $("d-approvals").replaceChildren(table(["Request", "Expires", ""], d.approvals.map((a) => [
    `${a.kind}: ${a.subject}`, when(a.expires_at),
    el("span", {}, ...["approve", "deny"].map((decision) => el("button", { type: "button", onclick: async () => {
      await api("POST", `/api/dashboard/approvals/${a.id}`, { decision }); loadDashboard();
    } }, decision))),
  ])));
  $("d-secrets").replaceChildren(table(["Name", "Host", "Header"], d.secrets.map((x) => [x.name, x.host, x.header])));
  $("d-logs").textContent = d.logs.map((l) => `${new Date(l.time * 1000).toLocaleTimeString()} ${l.level} ${l.event}`).join("\n");
}

// -- wiring it up ---------------------------------------------------------------------------

let dashboardTimer = null;
for (const button of document.querySelectorAll("nav button")) {
  button.addEventListener("click", () => {
    for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b === button);
    for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.id === button.dataset.tab);
    clearInterval(dashboardTimer);
    if (button.dataset.tab === "dashboard") {
      loadDashboard().catch((e) => ($("d-status").textContent = e.message));
      dashboardTimer = setInterval(() => loadDashboard().catch(() => {}), 5000);
    }
  });
}
$("composer").addEventListener("submit", (e) => { e.preventDefault(); send($("text"), null, $("file")); });
$("thread-composer").addEventListener("submit", (e) => { e.preventDefault(); send($("thread-text"), state.thread, null); });
submitOnEnter($("text"), $("composer"));
submitOnEnter($("thread-text"), $("thread-composer"));
$("file").addEventListener("change", () => { $("files-chosen").textContent = [...$("file").files].map((f) => f.name).join(", "); });
$("close-thread").addEventListener("click", () => { state.thread = null; $("thread").hidden = true; });
$("modal-close").addEventListener("click", () => { $("modal").close(); $("modal-frame").src = "about:blank"; });
$("memory-form").addEventListener("submit", async (event) => {
  if (event.submitter && event.submitter.value === "save") {
    await api("PUT", `/api/dashboard/memory/${encodeURIComponent($("memory-dialog").dataset.group)}`, { text: $("memory-text").value });
  }
});
$("onboard-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { assistant_name: $("onboard-name").value };
  if ($("onboard-key").value) body.anthropic_api_key = $("onboard-key").value;
  try { await api("POST", "/api/dashboard/onboarding", body); $("onboard-result").textContent = "Saved. Restart the host to use it."; $("onboard-key").value = ""; }
  catch (error) { $("onboard-result").textContent = error.message; }
});
connect();
