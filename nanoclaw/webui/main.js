// NanoClaw's web chat and dashboard: plain ES modules, no build step and nothing loaded from elsewhere.

import { $, showError } from "./util.js";
import * as live from "./live.js";
import * as chat from "./chat.js";
import * as conversations from "./conversations.js";
import * as dashboard from "./dashboard.js";
import * as people from "./people.js";
import * as theme from "./theme.js";

function showTab(name) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const on = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
  }
  $("chat").hidden = name !== "chat";
  $("dashboard").hidden = name !== "dashboard";
  if (name === "dashboard") {
    live.subscribe("dashboard"); // the host pushes its state from now on
    dashboard.refresh().catch((error) => showError(error.message));
    people.shown(true);
  } else {
    people.shown(false);
    live.unsubscribe("dashboard");
    $("text").focus();
  }
  history.replaceState(null, "", name === "dashboard" ? "#dashboard" : location.pathname);
}

function setupTabs() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  for (const tab of tabs) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
    tab.addEventListener("keydown", (event) => { // arrow keys move between tabs (ARIA tabs pattern)
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      next.focus();
      showTab(next.dataset.tab);
    });
  }
}

let firstConnection = true;
live.onConnection(async (connected) => {
  $("conn").textContent = connected ? "connected" : "reconnecting…";
  $("conn").classList.toggle("live", connected);
  if (!connected) return;
  try {
    if (!firstConnection) await chat.openConversation(chat.state.thread); // what happened while away
    firstConnection = false;
    await conversations.load();
    await chat.flushOutbox(); // messages typed while the host was down
  } catch (error) {
    showError(error.message);
  }
});

theme.setup();
setupTabs();
chat.setup(live);
conversations.setup(live);
dashboard.setup(live);
people.setup();
chat.openConversation(null).catch((error) => showError(error.message));
live.connect();
showTab(location.hash === "#dashboard" ? "dashboard" : "chat");
