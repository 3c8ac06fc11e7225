// Messages typed while the host cannot be reached: kept (in localStorage, so a reload keeps them too) and
// sent when the connection is back. Each has a client id, so a resend after a lost answer is stored once.

const KEY = "nanoclaw.outbox";

export function load() {
  try { return JSON.parse(localStorage.getItem(KEY) || "[]"); }
  catch { return []; }
}

function save(items) {
  try { localStorage.setItem(KEY, JSON.stringify(items)); } catch { /* storage full or off: kept in memory */ }
}

const memoryFiles = new Map(); // client id → File[]: files cannot live in localStorage; kept until sent

export function keep(item, files) {
  const items = load().filter((i) => i.client_id !== item.client_id);
  items.push(item);
  save(items);
  if (files && files.length) memoryFiles.set(item.client_id, files);
}

export function drop(clientId) {
  save(load().filter((i) => i.client_id !== clientId));
  memoryFiles.delete(clientId);
}

export function filesOf(clientId) { return memoryFiles.get(clientId) || []; }

export function waiting() { return load(); }
