// Live events over the WebSocket at /api/v1/stream (token as ?access_token=).
// The server sends an unread_count frame on connect and then notification,
// message and unread_count frames; the badges follow them. The socket
// reconnects with backoff (a fresh token each time); while it is down the
// counts are polled every 30 s so the badges never go stale for long.
import { api, freshToken, getSession, onSession } from './api.js';
import { unread } from './store.js';

const handlers = { notification: new Set(), message: new Set(), open: new Set() };
let ws = null;
let retry = 0;
let timer = 0;
let pollTimer = 0;
let wanted = false;

// Screens that show a thread or the notifications list register here; a
// handler that returns true has "seen" the event, so no badge is added.
export function onLive(type, fn) {
  handlers[type].add(fn);
  return () => handlers[type].delete(fn);
}

export function isLive() {
  return !!ws && ws.readyState === WebSocket.OPEN;
}

function dispatch(type, data) {
  let seen = false;
  for (const fn of handlers[type]) if (fn(data)) seen = true;
  return seen;
}

function onFrame(frame) {
  const me = getSession() && getSession().user;
  if (frame.type === 'unread_count' && frame.data) {
    unread.set((u) => ({
      notifications: typeof frame.data.notifications === 'number' ? frame.data.notifications : u.notifications,
      messages: typeof frame.data.messages === 'number' ? frame.data.messages : u.messages,
    }));
  } else if (frame.type === 'notification' && frame.data) {
    const seen = dispatch('notification', frame.data);
    if (!seen && !frame.data.read) unread.set((u) => ({ ...u, notifications: u.notifications + 1 }));
  } else if (frame.type === 'message' && frame.data) {
    const seen = dispatch('message', frame.data);
    const mine = me && frame.data.sender && frame.data.sender.id === me.id;
    if (!seen && !mine) unread.set((u) => ({ ...u, messages: u.messages + 1 }));
  }
}

// Counts from the REST API, for when the socket is not there.
export async function refreshCounts() {
  if (!getSession()) return;
  const [n, c] = await Promise.allSettled([
    api.get('/notifications/unread_count'),
    api.get('/conversations', { limit: 50 }),
  ]);
  unread.set((u) => ({
    notifications: n.status === 'fulfilled' && n.value ? n.value.count : u.notifications,
    messages:
      c.status === 'fulfilled' && c.value
        ? c.value.items.reduce((sum, conv) => sum + (conv.unread_count || 0), 0)
        : u.messages,
  }));
}

function schedule() {
  clearTimeout(timer);
  if (!wanted) return;
  const delay = Math.min(30000, 1000 * 2 ** retry) * (0.75 + Math.random() * 0.5);
  retry = Math.min(retry + 1, 6);
  timer = setTimeout(connect, delay);
}

function startPolling() {
  if (pollTimer) return;
  refreshCounts();
  pollTimer = setInterval(() => {
    if (!isLive() && document.visibilityState === 'visible') refreshCounts();
  }, 30000);
}

async function connect() {
  clearTimeout(timer);
  if (!wanted || (ws && ws.readyState <= WebSocket.OPEN)) return;
  const token = await freshToken();
  if (!token || !wanted) return;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  let sock;
  try {
    sock = new WebSocket(`${proto}//${location.host}/api/v1/stream?access_token=${encodeURIComponent(token)}`);
  } catch {
    schedule();
    return;
  }
  ws = sock;
  sock.onopen = () => {
    retry = 0;
    document.documentElement.dataset.live = 'open'; // for tests and styling
    dispatch('open', null);
  };
  sock.onmessage = (e) => {
    try {
      onFrame(JSON.parse(e.data));
    } catch {
      // a frame we do not understand
    }
  };
  sock.onclose = () => {
    if (ws === sock) ws = null;
    delete document.documentElement.dataset.live;
    schedule();
  };
}

export function startLive() {
  if (wanted) return;
  wanted = true;
  retry = 0;
  startPolling();
  connect();
}

export function stopLive() {
  wanted = false;
  clearTimeout(timer);
  clearInterval(pollTimer);
  pollTimer = 0;
  if (ws) {
    const s = ws;
    ws = null;
    s.onclose = null;
    s.close();
  }
  unread.set({ notifications: 0, messages: 0 });
}

onSession((s) => (s ? startLive() : stopLive()));
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && wanted && !ws) {
    retry = 0;
    connect();
  }
});
