// The dashboard's channels-and-people panel (host/dashboard_people.py): channel health, chats waiting for the
// owner's answer, pairing requests, linked owner accounts. Uses api() and el() of app.js; text only, no HTML.
"use strict";

(function () {
  const panel = el("div", { class: "card wide", id: "d-people" }, el("h2", {}, "Channels and people"));
  const body = el("div", {});
  let linkText = "";
  panel.append(body);
  document.querySelector("#dashboard .grid").prepend(panel);

  const button = (label, action) => el("button", { type: "button", onclick: async () => {
    try { await action(); } catch (e) { alert(e.message); }
    load();
  } }, label);

  function section(title, rows) {
    return el("div", { class: "people-section" }, el("h3", {}, title), rows.length ? table(rows[0].head, rows.map((r) => r.cells)) : el("p", {}, "none"));
  }

  async function load() {
    const d = await api("GET", "/api/dashboard/people");
    const channels = d.channels.map((c) => ({ head: ["Channel", "Connection", "Fix", "New chats"], cells: [
      c.name, c.text, c.state === "failed" ? c.fix : "",
      c.new_chats === null ? "" : (() => {
        const select = el("select", { "aria-label": `new chats on ${c.name}`, onchange: async () => {
          await api("POST", `/api/dashboard/people/channels/${encodeURIComponent(c.name)}`, { new_chats: select.value }); load();
        } }, ...["ask", "main", "pairing", "ignore"].map((p) => el("option", p === c.new_chats ? { selected: "" } : {}, p)));
        return select;
      })(),
    ] }));
    const chats = d.new_chats.map((n) => ({ head: ["Who", "Where", "First line", "Waiting", ""], cells: [
      n.who, `${n.where} (${n.chat})`, n.first_line, String(n.waiting),
      el("span", {}, ...d.groups.map((g) => button(`Answer with ${g}`, () => api("POST", `/api/dashboard/people/new-chats/${n.id}`, { choice: g }))),
        button("Ignore", () => api("POST", `/api/dashboard/people/new-chats/${n.id}`, { choice: "ignore" })),
        button("Block", () => api("POST", `/api/dashboard/people/new-chats/${n.id}`, { choice: "block" }))),
    ] }));
    const pairing = d.pairing.map((p) => ({ head: ["Code", "Channel", "Who", "First line", ""], cells: [
      p.code, p.channel, p.who, p.first_line,
      el("span", {}, button("Approve", () => api("POST", `/api/dashboard/people/pairing/${p.code}`, { decision: "approve" })),
        button("Deny", () => api("POST", `/api/dashboard/people/pairing/${p.code}`, { decision: "deny" }))),
    ] }));
    const people = d.people.map((p) => ({ head: ["Account", "Name", "Role", ""], cells: [
      p.identity, p.name || "", p.role,
      p.role === "blocked" || p.identity === "web:owner" ? "" :
        button("Unlink", () => api("POST", "/api/dashboard/people/owners/unlink", { identity: p.identity })),
    ] }));
    const code = el("span", { id: "owner-link-code" }, linkText);
    body.replaceChildren(
      section("Channels", channels), section("New chats waiting for you", chats), section("Pairing requests", pairing),
      section("Your accounts and roles", people),
      el("p", {}, button("Link another chat account", async () => {
        const r = await api("POST", "/api/dashboard/people/owner-link");
        linkText = ` Send ${r.code} to the assistant from that account (valid 1 hour, once).`;
      }), code));
  }

  let timer = null;
  for (const tab of document.querySelectorAll("nav button")) {
    tab.addEventListener("click", () => {
      clearInterval(timer);
      if (tab.dataset.tab === "dashboard") { load().catch(() => {}); timer = setInterval(() => load().catch(() => {}), 5000); }
    });
  }
})();
