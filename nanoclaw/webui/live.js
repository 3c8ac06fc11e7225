// The page's one WebSocket to the host: events by type, reconnecting with backoff, topics re-asked on reconnect.

const handlers = new Map();
const topics = new Set();
let socket = null;
let onState = () => {};

export function on(type, handler) {
  if (!handlers.has(type)) handlers.set(type, []);
  handlers.get(type).push(handler);
}

/** Called with true when connected, false when the connection is lost. */
export function onConnection(handler) { onState = handler; }

export function subscribe(topic) {
  topics.add(topic);
  send();
}

export function unsubscribe(topic) {
  topics.delete(topic);
  send();
}

function send() {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "subscribe", topics: [...topics] }));
  }
}

export function connect(delay = 500) {
  socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/chat/events`);
  socket.onopen = () => { delay = 500; send(); onState(true); };
  socket.onmessage = (event) => {
    const data = JSON.parse(event.data);
    for (const handler of handlers.get(data.type) || []) handler(data);
  };
  socket.onclose = () => {
    onState(false);
    setTimeout(() => connect(Math.min(delay * 2, 10000)), delay);
  };
}
