// The API client: the only module that talks HTTP to /api/v1.
//
// - The session (tokens and the signed-in user) lives in localStorage so a
//   reload or a second tab stays signed in; a "storage" event keeps tabs in
//   step.
// - Access tokens live 15 minutes. A request refreshes first when the token
//   is about to expire, and a 401 triggers one refresh and one retry. Refresh
//   tokens are single-use and reusing one revokes the whole family, so only
//   one refresh runs at a time, across tabs too (navigator.locks), and a tab
//   that finds a newer token in storage uses it instead of refreshing again.
// - Every failure becomes an ApiError carrying the API's error envelope
//   (status, code, message, fields) plus a readable sentence, so each screen
//   can show it next to what caused it.
// - Uploads go through XMLHttpRequest because fetch has no upload progress.

const BASE = '/api/v1';
const KEY = 'social.session';
const listeners = new Set();

function loadSession() {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

let session = loadSession();

function emit() {
  for (const fn of listeners) fn(session);
}

window.addEventListener('storage', (e) => {
  if (e.key !== KEY) return;
  session = loadSession();
  emit();
});

export function getSession() {
  return session;
}

export function onSession(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function save(next) {
  session = next;
  try {
    if (next) localStorage.setItem(KEY, JSON.stringify(next));
    else localStorage.removeItem(KEY);
  } catch {
    // private mode: the session lasts as long as the page
  }
  emit();
}

// Stores an auth reply ({user, access_token, refresh_token, expires_in}).
export function setSession(reply) {
  save({
    access_token: reply.access_token,
    refresh_token: reply.refresh_token,
    expires_at: Date.now() + (reply.expires_in || 900) * 1000,
    user: reply.user || (session && session.user) || null,
  });
}

export function updateSessionUser(user) {
  if (session) save({ ...session, user });
}

export function clearSession() {
  save(null);
}

export class ApiError extends Error {
  constructor(status, code, message, fields, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields || null;
    this.retryAfter = retryAfter || null;
  }
  // Offline, 503 and 504 are worth a retry button.
  get retryable() {
    return this.status === 0 || this.status === 503 || this.status === 504 || this.status === 429;
  }
}

const FRIENDLY = {
  0: "Can't reach the server. Check your connection and try again.",
  413: 'That file is too large. Photos can be up to 10 MB and 40 megapixels.',
  415: "That file isn't a photo we can read. Use a JPEG, PNG or WebP image.",
  429: 'Too many attempts. Wait a moment and try again.',
  503: 'This part of the service is temporarily unavailable. Try again in a moment.',
  504: 'The server took too long to answer. Try again in a moment.',
};

// Builds an ApiError from a status and a parsed body (an error envelope or not).
function toError(status, body, retryAfter) {
  const env = body && body.error && typeof body.error === 'object' ? body.error : null;
  const code = (env && env.code) || (status >= 500 ? 'unavailable' : 'error');
  let message = (env && env.message) || '';
  if (status === 413 || status === 415 || status === 0) {
    message = FRIENDLY[status];
  } else if (status === 429) {
    message = retryAfter
      ? `Too many attempts. Try again in ${retryAfter} second${retryAfter === '1' ? '' : 's'}.`
      : FRIENDLY[429];
  } else if (status === 503 || status === 504) {
    message = FRIENDLY[status];
  } else if (!message) {
    message = status === 404 ? 'Not found.' : status === 403 ? "You don't have access to this." : 'Something went wrong.';
  } else if (!/[.!?]$/.test(message)) {
    message = message[0].toUpperCase() + message.slice(1) + '.';
  }
  return new ApiError(status, code, message, env && env.fields, retryAfter);
}

export function offlineError() {
  return new ApiError(0, 'offline', FRIENDLY[0]);
}

let refreshing = null;

async function doRefresh(stale) {
  // Another tab may have rotated the token while we waited for the lock.
  const latest = loadSession();
  if (!latest) {
    save(null);
    throw new ApiError(401, 'unauthenticated', 'Your session has ended. Sign in again.');
  }
  if (latest.refresh_token !== stale) {
    session = latest;
    return;
  }
  let res;
  try {
    res = await fetch(BASE + '/auth/refresh', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: stale }),
    });
  } catch {
    throw offlineError();
  }
  const body = await res.json().catch(() => null);
  if (res.ok && body && body.access_token) {
    setSession(body);
    return;
  }
  if (res.status === 401 || res.status === 400) {
    save(null);
    throw new ApiError(401, 'unauthenticated', 'Your session has ended. Sign in again.');
  }
  throw toError(res.status, body, res.headers.get('Retry-After'));
}

// One refresh at a time in this tab, and (where supported) across tabs.
export function refreshSession() {
  if (!session || !session.refresh_token) {
    return Promise.reject(new ApiError(401, 'unauthenticated', 'Sign in to continue.'));
  }
  if (!refreshing) {
    const stale = session.refresh_token;
    const run = () => doRefresh(stale);
    const p = navigator.locks ? navigator.locks.request('social.refresh', run) : run();
    refreshing = p.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

// A token that is good for at least another 30 s, or null when signed out.
export async function freshToken() {
  if (!session) return null;
  if (session.expires_at - Date.now() < 30000) {
    try {
      await refreshSession();
    } catch (e) {
      if (e.status === 401) return null;
      // offline: try the old token, the request will say what happened
    }
  }
  return session ? session.access_token : null;
}

function query(params) {
  if (!params) return '';
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
}

// request('GET', '/feed', {query: {cursor}}) -> parsed JSON (null for 204).
export async function request(method, path, opts = {}) {
  const url = BASE + path + query(opts.query);
  const isAuth = path.startsWith('/auth/');
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: 'application/json', ...(opts.headers || {}) };
    const token = isAuth ? null : await freshToken();
    if (token) headers.Authorization = 'Bearer ' + token;
    let body;
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    let res;
    try {
      res = await fetch(url, { method, headers, body, signal: opts.signal });
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw offlineError();
    }
    if (res.status === 401 && token && attempt === 0) {
      try {
        await refreshSession();
        continue;
      } catch (e) {
        throw e.status === 401 ? e : toError(401, null);
      }
    }
    if (res.status === 204) return null;
    const text = await res.text().catch(() => '');
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) throw toError(res.status, data, res.headers.get('Retry-After'));
    return data;
  }
}

export const api = {
  get: (path, q, signal) => request('GET', path, { query: q, signal }),
  post: (path, body, headers) => request('POST', path, { body, headers }),
  patch: (path, body) => request('PATCH', path, { body }),
  put: (path, body) => request('PUT', path, { body }),
  del: (path, body) => request('DELETE', path, { body }),
};

function sendXhr(method, url, form, token, headers, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.setRequestHeader('Accept', 'application/json');
    if (token) xhr.setRequestHeader('Authorization', 'Bearer ' + token);
    for (const [k, v] of Object.entries(headers || {})) xhr.setRequestHeader(k, v);
    if (onProgress) {
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) onProgress(e.loaded / e.total);
      };
    }
    xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText, retryAfter: xhr.getResponseHeader('Retry-After') });
    xhr.onerror = () => resolve({ status: 0 });
    xhr.ontimeout = () => resolve({ status: 504 });
    xhr.send(form);
  });
}

// A multipart upload with progress (0..1). Same refresh-and-retry as request().
export async function upload(method, path, form, { onProgress, headers } = {}) {
  for (let attempt = 0; ; attempt++) {
    const token = await freshToken();
    const res = await sendXhr(method, BASE + path, form, token, headers, onProgress);
    if (res.status === 401 && token && attempt === 0) {
      await refreshSession();
      continue;
    }
    if (res.status === 0) throw offlineError();
    let data = null;
    try {
      data = res.text ? JSON.parse(res.text) : null;
    } catch {
      data = null;
    }
    if (res.status < 200 || res.status >= 300) throw toError(res.status, data, res.retryAfter);
    return data;
  }
}

// Signs out on the server (best effort) and forgets the tokens here.
export async function signOut() {
  const s = session;
  clearSession();
  if (s && s.refresh_token) {
    try {
      await fetch(BASE + '/auth/logout', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: s.refresh_token }),
      });
    } catch {
      // the token expires on its own
    }
  }
}

// Path segment encoding for usernames, tags and ids.
export const seg = (s) => encodeURIComponent(String(s));

// A random key for Idempotency-Key: one per thing the person means to create.
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}
