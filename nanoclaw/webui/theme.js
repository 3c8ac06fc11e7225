// Light, dark, or following the system (the default); the choice is kept in this browser.

const KEY = "nanoclaw.theme";
const NEXT = { auto: "light", light: "dark", dark: "auto" };
const LABEL = { auto: "Theme: follow the system", light: "Theme: light", dark: "Theme: dark" };
const ICON = { auto: "◐", light: "☀", dark: "☾" };

function apply(choice) {
  if (choice === "auto") document.documentElement.removeAttribute("data-theme");
  else document.documentElement.setAttribute("data-theme", choice);
  const button = document.getElementById("theme");
  button.textContent = ICON[choice];
  button.setAttribute("aria-label", LABEL[choice]);
  button.title = LABEL[choice];
}

export function setup() {
  let choice = localStorage.getItem(KEY) || "auto";
  if (!(choice in NEXT)) choice = "auto";
  apply(choice);
  document.getElementById("theme").addEventListener("click", () => {
    choice = NEXT[choice];
    localStorage.setItem(KEY, choice);
    apply(choice);
  });
}
