// The dashboard's channels-and-people panel (host/dashboard_people.py): channel health, chats waiting for the
// owner's answer, pairing requests, linked owner accounts. Text only, no HTML. Refreshed while it is shown.

import { $, api, el, showError } from "./util.js";

let body = null;
let linkText = "";
let timer = null;

function table(headers, rows) {
  if (!rows.length) return el("p", { class: "empty" }, "None.");
  const head = el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h))));
  const bodyRows = rows.map((cells) => el("tr", {}, ...cells.map((c, i) => el("td", { "data-label": headers[i] }, c))));
  return el("table", {}, head, el("tbody", {}, ...bodyRows));
}

const button = (label, action) => el("button", { type: "button", class: "small", onclick: async () => {
  try { await action(); } catch (error) { showError(error.message); }
  load().catch((error) => showError(error.message));
} }, label);

const section = (title, headers, rows) => el("div", { class: "people-section" }, el("h3", {}, title), table(headers, rows));

function newChatsSelect(channel) {
  const select = el("select", { "aria-label": `new chats on ${channel.name}`, onchange: async () => {
    try {
      await api("POST", `/api/dashboard/people/channels/${encodeURIComponent(channel.name)}`, { new_chats: select.value });
    } catch (error) { showError(error.message); }
    load().catch((error) => showError(error.message));
  } }, ...["ask", "main", "pairing", "ignore"].map((p) => el("option", p === channel.new_chats ? { selected: "" } : {}, p)));
  return select;
}

async function load() {
  const d = await api("GET", "/api/dashboard/people");
  const active = document.activeElement;
  if (active && body.contains(active) && active.matches("select")) return; // not while the owner is choosing
  const answer = (id, choice) => api("POST", `/api/dashboard/people/new-chats/${id}`, { choice });
  body.replaceChildren(
    section("Channels", ["Channel", "Connection", "Fix", "New chats"], d.channels.map((c) => [
      c.name, c.text, c.state === "failed" ? c.fix : "", c.new_chats === null ? "" : newChatsSelect(c)])),
    section("New chats waiting for you", ["Who", "Where", "First line", "Waiting", ""], d.new_chats.map((n) => [
      n.who, `${n.where} (${n.chat})`, n.first_line, String(n.waiting),
      el("span", { class: "inline-form" }, ...d.groups.map((g) => button(`Answer with ${g}`, () => answer(n.id, g))),
        button("Ignore", () => answer(n.id, "ignore")), button("Block", () => answer(n.id, "block")))])),
    section("Pairing requests", ["Code", "Channel", "Who", "First line", ""], d.pairing.map((p) => [
      p.code, p.channel, p.who, p.first_line,
      el("span", { class: "inline-form" },
        button("Approve", () => api("POST", `/api/dashboard/people/pairing/${p.code}`, { decision: "approve" })),
        button("Deny", () => api("POST", `/api/dashboard/people/pairing/${p.code}`, { decision: "deny" })))])),
    section("Your accounts and roles", ["Account", "Name", "Role", ""], d.people.map((p) => [
      p.identity, p.name || "", p.role,
      p.role === "blocked" || p.identity === "web:owner" ? "" :
        button("Unlink", () => api("POST", "/api/dashboard/people/owners/unlink", { identity: p.identity }))])),
    el("p", {}, button("Link another chat account", async () => {
      const r = await api("POST", "/api/dashboard/people/owner-link");
      linkText = ` Send ${r.code} to the assistant from that account (valid 1 hour, once).`;
    }), el("span", { id: "owner-link-code" }, linkText)));
}

/** The dashboard is shown (true) or hidden: the panel follows the host every 5 s only while it is seen. */
export function shown(on) {
  clearInterval(timer);
  timer = null;
  if (!on) return;
  load().catch((error) => showError(error.message));
  timer = setInterval(() => load().catch(() => {}), 5000);
}

export function setup() {
  body = el("div", {});
  $("dashboard").querySelector(".grid").prepend(
    el("div", { class: "card wide", id: "d-people" }, el("h2", {}, "Channels and people"), body));
}
