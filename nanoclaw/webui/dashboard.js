// The dashboard: what the host is doing, live (the host pushes its state over the page's socket), and the
// owner's levers (forms in dashboard_forms.js). Times are human ("in 3 h", "2 min ago").

import { $, api, el, human, timeEl } from "./util.js";
import * as forms from "./dashboard_forms.js";

let latest = null;
const deferred = new Set(); // sections not redrawn while the owner types in them

/** Replace a section's content, unless the owner is typing in it (then after they leave it). */
function put(id, content) {
  const box = $(id);
  const active = document.activeElement;
  if (active && box.contains(active) && active.matches("input, select, textarea")) {
    deferred.add(id);
    return;
  }
  box.replaceChildren(content);
}

function table(headers, rows) {
  if (!rows.length) return el("p", { class: "empty" }, "None.");
  const head = headers.some(Boolean) ? el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))) : null;
  const bodyRows = rows.map((cells) => el("tr", {}, ...cells.map((c, i) => el("td", { "data-label": headers[i] }, c))));
  return el("table", {}, head, el("tbody", {}, ...bodyRows));
}

const when = (seconds, now) => (seconds ? timeEl(seconds, human(seconds, now)) : "");
const button = (label, onclick, attrs = {}) => el("button", { type: "button", class: "small", onclick, ...attrs }, label);

async function act(method, path, body) {
  try { await api(method, path, body); } catch (error) { alertIn(error.message); }
}

function alertIn(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = false;
  setTimeout(() => { box.hidden = true; }, 6000);
}

export function render(d) {
  latest = d;
  const s = d.status;
  const now = d.now;
  $("onboarding").hidden = !d.onboarding.needs_model_key;
  if (!$("onboard-name").value) $("onboard-name").value = d.assistant;
  put("d-status", table(["", ""], [
    ["Provider", s.provider], ["Sandbox", s.runtime], ["Channels", s.channels.join(", ")],
    ["Agents running", `${s.live_runners} of at most ${s.max_sandboxes}`],
    ["Memory", `agents ${s.memory.runners_mb} MB · ready in advance ${s.memory.pool_mb} MB (${s.pool.sandboxes.length}) · budget ${s.memory.budget_mb} MB`],
    ["Up since", when(now - s.uptime, now)], ["Replies delivered", String(s.delivered)],
  ]));
  put("d-approvals", table(["Request", "Expires", ""], d.approvals.map((a) => [
    `${a.kind}: ${a.subject}`, when(a.expires_at, now),
    el("span", { class: "inline-form" },
      button("Approve", () => act("POST", `/api/dashboard/approvals/${a.id}`, { decision: "approve" }), { class: "small primary" }),
      button("Deny", () => act("POST", `/api/dashboard/approvals/${a.id}`, { decision: "deny" }))),
  ])));
  put("d-sessions", table(["Session", "Agent", "Chat", "Agent process", "Last active", ""],
    s.sessions.map((x) => [
      x.id, x.agent_group, x.thread ? `${x.chat} · ${x.thread}` : x.chat,
      x.runner_pid ? el("span", { class: "live-dot" }, `● running (pid ${x.runner_pid}, ${x.runner_rss_mb ?? "?"} MB)`) : "idle",
      when(x.last_active, now), button("Transcript", () => forms.transcript(x.id), { class: "small transcript-open" }),
    ])));
  put("d-tasks", table(["Task", "Agent", "Schedule", "Status", "Next run", ""], d.tasks.map((t) => [
    t.prompt.length > 90 ? `${t.prompt.slice(0, 90)}…` : t.prompt, t.group, `${t.schedule} (${t.timezone})`, t.status,
    t.status === "active" ? when(t.next_run_at, now) : "",
    el("span", { class: "inline-form" },
      button(t.status === "paused" ? "Resume" : "Pause", () =>
        act("POST", `/api/dashboard/tasks/${t.id}/${t.status === "paused" ? "resume" : "pause"}`), { class: "small task-toggle" }),
      button("Edit", () => forms.editTask(t)),
      button("Cancel", () => act("POST", `/api/dashboard/tasks/${t.id}/cancel`))),
  ])));
  put("d-chats", table(["Chat", "Name", "Senders", "Answered by"], d.chats.map((c) => [
    c.chat, c.name || "", c.policy,
    el("div", {}, ...c.wirings.map((w) => forms.wiringEditor(w)), forms.wireForm(c, d.groups)),
  ])));
  put("d-groups", table(["Agent", "Model", "Memory"], [...d.groups, { id: "global", name: "Global" }].map((g) => [
    `${g.name || g.id}${g.admin && !/admin/i.test(g.name || "") ? " (admin)" : ""}`, g.provider ? `${g.provider} ${g.model}`.trim() : "",
    button("Edit", () => forms.editMemory(g.id), { class: "small edit-memory", "aria-label": `Edit the memory of ${g.name || g.id}` }),
  ])));
  put("d-secrets", table(["Name", "Sent to", "Changed", ""], d.secrets.map((x) => [
    x.name, `${x.host} (${x.header})`, when(x.rotated_at || x.created_at, now),
    el("span", { class: "inline-form" }, forms.rotateForm(x),
      button("Remove", () => act("DELETE", `/api/dashboard/secrets/${encodeURIComponent(x.name)}`))),
  ])));
  forms.fillTaskForm(d);
  renderLogs();
}

function renderLogs() {
  if (!latest) return;
  const level = $("log-level").value;
  const text = $("log-text").value.trim().toLowerCase();
  const rank = { INFO: 1, WARNING: 2, ERROR: 3, CRITICAL: 4 };
  const lines = latest.logs.filter((l) => (!level || (rank[l.level] || 0) >= rank[level]) &&
                                          (!text || l.event.toLowerCase().includes(text)));
  const box = $("d-logs");
  const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.replaceChildren(...lines.slice(-300).map((l) => el("li", { class: `lvl-${l.level}` },
    timeEl(l.time, new Date(l.time * 1000).toLocaleTimeString()), `${l.level} ${l.event}`)));
  if (stick) box.scrollTop = box.scrollHeight;
}

export async function refresh() {
  render(await api("GET", "/api/dashboard"));
}

export function setup(live) {
  live.on("dashboard", (event) => render(event.data));
  $("dashboard").addEventListener("focusout", () => setTimeout(() => {
    if (deferred.size && latest) { deferred.clear(); render(latest); }
  }, 0));
  $("log-level").addEventListener("change", renderLogs);
  $("log-text").addEventListener("input", renderLogs);
  forms.setup(refresh);
}
