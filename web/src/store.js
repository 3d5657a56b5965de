// Tiny observable stores and the hook that reads them. The app's shared
// state is small (who is signed in, unread counts, online or not, a toast),
// so a store is a value plus listeners; components re-render on change.
import { useEffect, useState } from 'preact/hooks';
import { getSession, onSession } from './api.js';

export function createStore(initial) {
  let value = initial;
  const subs = new Set();
  return {
    get: () => value,
    set(next) {
      value = typeof next === 'function' ? next(value) : next;
      for (const fn of subs) fn(value);
    },
    subscribe(fn) {
      subs.add(fn);
      return () => subs.delete(fn);
    },
  };
}

export function useStore(store) {
  const [value, setValue] = useState(store.get());
  useEffect(() => {
    setValue(store.get());
    return store.subscribe(setValue);
  }, [store]);
  return value;
}

// The signed-in user (null when signed out), kept in step with the session.
export const me = createStore(getSession() ? getSession().user : null);
onSession((s) => me.set(s ? s.user : null));

// Unread counts shown as badges; the WebSocket keeps them live.
export const unread = createStore({ notifications: 0, messages: 0 });

export const online = createStore(navigator.onLine !== false);
// Bumped by the offline banner's Retry: failed loads on screen try again.
export const retryAll = createStore(0);
window.addEventListener('online', () => online.set(true));
window.addEventListener('offline', () => online.set(false));

// One short message at the bottom of the screen ("Link copied", errors of
// actions that have no field to sit next to).
export const toast = createStore(null);
let toastTimer = 0;
export function showToast(text, kind = 'info') {
  clearTimeout(toastTimer);
  toast.set({ text, kind, id: Date.now() });
  toastTimer = setTimeout(() => toast.set(null), 4000);
}
