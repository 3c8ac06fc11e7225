// The dashboard's forms: tasks, secrets (the value is sent once and never shown back), wirings, memory,
// transcripts and onboarding. After a change the host pushes the new state; `refresh` is the fallback.

import { $, api, el, timeEl, clock } from "./util.js";

let refresh = async () => {};
let editing = null; // the task being edited in the form, or null for a new one
const notes = new Map(); // what the last action of a re-rendered form said (kept across live updates)

function result(form, key) {
  return form.querySelector(".result") || form.appendChild(el("span", { class: "result", role: "status" }, notes.get(key) || ""));
}

async function submit(form, method, path, body, done, key = form.id) {
  try {
    await api(method, path, body);
    notes.set(key, done);
    result(form, key).textContent = done;
    await refresh();
    return true;
  } catch (error) {
    notes.set(key, error.message);
    result(form, key).textContent = error.message;
    return false;
  }
}

const field = (label, control, grow = false) => el("label", { class: grow ? "grow" : "" }, label, control);

function options(values, selected) {
  return values.map(([value, label]) => el("option", { value, selected: String(value) === String(selected) }, label));
}

export function fillTaskForm(d) {
  const form = $("task-form");
  if (form.dataset.ready) return;
  form.dataset.ready = "1";
  const chats = d.chats.filter((c) => c.wirings.length);
  form.append(
    field("What the agent does", el("input", { name: "prompt", required: true, placeholder: "Check the weather and tell me" }), true),
    field("Agent", el("select", { name: "group" }, ...options(d.groups.map((g) => [g.id, g.name || g.id]), "main"))),
    field("Chat", el("select", { name: "chat_id" }, ...options(chats.map((c) => [c.id, c.name || c.chat]), ""))),
    field("Repeat", el("select", { name: "kind" }, ...options([["cron", "cron"], ["interval", "every N seconds"], ["once", "once"]], "cron"))),
    field("When", el("input", { name: "spec", required: true, placeholder: "0 8 * * *  ·  3600  ·  2025-06-01 09:00" })),
    field("Time zone", el("input", { name: "timezone", placeholder: Intl.DateTimeFormat().resolvedOptions().timeZone })),
    el("button", { type: "submit", class: "primary" }, "Save task"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    data.chat_id = data.chat_id ? Number(data.chat_id) : undefined;
    data.timezone = data.timezone || Intl.DateTimeFormat().resolvedOptions().timeZone;
    const ok = editing
      ? await submit(form, "PATCH", `/api/dashboard/tasks/${editing}`, data, "Changed.")
      : await submit(form, "POST", "/api/dashboard/tasks", data, "Added.");
    if (ok) { form.reset(); editing = null; form.querySelector("button[type=submit]").textContent = "Save task"; }
  });
}

export function editTask(t) {
  const form = $("task-form");
  form.closest("details").open = true;
  editing = t.id;
  form.elements.prompt.value = t.prompt;
  form.elements.kind.value = t.kind;
  form.elements.spec.value = t.spec;
  form.elements.timezone.value = t.timezone;
  form.querySelector("button[type=submit]").textContent = "Save changes";
  form.elements.prompt.focus();
}

export function wiringEditor(w) {
  const trigger = el("select", { "aria-label": "Trigger" }, ...options(["mention", "prefix", "always", "dm"].map((t) => [t, t]), w.trigger));
  const value = el("input", { value: w.trigger_value || "", placeholder: "prefix / word", "aria-label": "Trigger word" });
  const key = `wiring:${w.id}`;
  const save = el("button", { type: "button", class: "small" }, notes.get(key) || "Save");
  save.addEventListener("click", async () => {
    try {
      await api("POST", `/api/dashboard/wirings/${w.id}`, { trigger: trigger.value, trigger_value: value.value });
      notes.set(key, "Saved");
    } catch (error) { notes.set(key, error.message); }
    save.textContent = notes.get(key);
  });
  const unwire = el("button", { type: "button", class: "small", "aria-label": `Stop ${w.group} answering here` }, "Unwire");
  unwire.addEventListener("click", () => api("DELETE", `/api/dashboard/wirings/${w.id}`).then(refresh).catch(() => {}));
  return el("div", { class: "wiring" }, `${w.group}:`, trigger, value, save, unwire);
}

export function wireForm(chat, groups) {
  const group = el("select", { name: "group", "aria-label": "Agent" }, ...options(groups.map((g) => [g.id, g.name || g.id]), "main"));
  const trigger = el("select", { name: "trigger", "aria-label": "Trigger" }, ...options(["mention", "prefix", "always", "dm"].map((t) => [t, t]), chat.dm ? "dm" : "mention"));
  const form = el("form", { class: "inline-form wire-form" }, chat.wirings.length ? "Also:" : "Unwired: answer with", group, trigger,
    el("button", { type: "submit", class: "small primary" }, "Wire"));
  const key = `wire:${chat.id}`;
  if (notes.has(key)) result(form, key);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(form, "POST", "/api/dashboard/wirings", { chat_id: chat.id, group: group.value, trigger: trigger.value },
           "Wired.", key);
  });
  return form;
}

export function rotateForm(secret) {
  const value = el("input", { type: "password", autocomplete: "off", placeholder: "new value", "aria-label": `New value of ${secret.name}` });
  const key = `secret:${secret.name}`;
  const form = el("form", { class: "inline-form" }, value, el("button", { type: "submit", class: "small" }, "Rotate"));
  if (notes.has(key)) result(form, key);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await submit(form, "PUT", `/api/dashboard/secrets/${encodeURIComponent(secret.name)}`, { value: value.value },
                     "Rotated.", key)) {
      value.value = "";
    }
  });
  return form;
}

function secretForm() {
  const form = $("secret-form");
  form.append(
    field("Name", el("input", { name: "name", required: true, placeholder: "github" })),
    field("Host", el("input", { name: "host", required: true, placeholder: "api.github.com" })),
    field("Header", el("input", { name: "header", placeholder: "Authorization" })),
    field("Format", el("input", { name: "format", placeholder: "Bearer {value}" })),
    field("Value (goes to the vault, never shown again)", el("input", { name: "value", type: "password", required: true, autocomplete: "off" }), true),
    el("button", { type: "submit", class: "primary" }, "Add secret"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await submit(form, "POST", "/api/dashboard/secrets", Object.fromEntries(new FormData(form)), "Added.")) form.reset();
  });
}

export async function editMemory(group) {
  const data = await api("GET", `/api/dashboard/memory/${encodeURIComponent(group)}`);
  $("memory-title").textContent = `Memory of ${group} (CLAUDE.md)`;
  $("memory-text").value = data.text;
  $("memory-dialog").dataset.group = group;
  $("memory-dialog").showModal();
}

export async function transcript(sessionId) {
  const data = await api("GET", `/api/dashboard/sessions/${encodeURIComponent(sessionId)}/transcript`);
  $("transcript-title").textContent = `Transcript of ${sessionId}`;
  $("transcript").replaceChildren(...(data.rows.length ? data.rows.map((r) => el("li", { class: r.side },
    el("span", { class: "side" }, r.side === "in" ? `${r.who || "someone"} → agent (${r.kind})` : `agent → ${r.who || "chat"} (${r.kind})`,
       r.at ? " · " : "", r.at ? timeEl(r.at, clock(r.at)) : ""), r.text)) : [el("li", {}, "Nothing yet.")]));
  $("transcript-dialog").showModal();
}

export function setup(refreshFn) {
  refresh = refreshFn;
  secretForm();
  $("transcript-close").addEventListener("click", () => $("transcript-dialog").close());
  $("memory-form").addEventListener("submit", async (event) => {
    if (event.submitter && event.submitter.value === "save") {
      await api("PUT", `/api/dashboard/memory/${encodeURIComponent($("memory-dialog").dataset.group)}`, { text: $("memory-text").value });
    }
  });
  $("onboard-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { assistant_name: $("onboard-name").value };
    if ($("onboard-key").value) body.anthropic_api_key = $("onboard-key").value;
    try {
      await api("POST", "/api/dashboard/onboarding", body);
      $("onboard-result").textContent = "Saved. Restart the host to use it.";
      $("onboard-key").value = "";
    } catch (error) { $("onboard-result").textContent = error.message; }
  });
}
