// Client-side routing on the history API (no hashes): the gateway answers
// every path without a dot in its last segment with index.html, so deep links
// and reloads land here. Usernames may contain dots, so profile paths end
// with a slash (/u/ann.b/) to keep the last segment dot-free.
import { createStore, useStore } from './store.js';

function current() {
  return { path: location.pathname, search: location.search, key: (history.state && history.state.key) || 'root' };
}

export const location$ = createStore(current());

// Scroll positions per history entry, restored when going back.
const scrolls = new Map();
if ('scrollRestoration' in history) history.scrollRestoration = 'manual';

function remember() {
  scrolls.set(location$.get().key, window.scrollY);
}

export function navigate(to, { replace = false } = {}) {
  if (to === location.pathname + location.search && !replace) return;
  remember();
  const state = { key: Math.random().toString(36).slice(2) };
  if (replace) history.replaceState(state, '', to);
  else history.pushState(state, '', to);
  location$.set(current());
  window.scrollTo(0, 0);
}

window.addEventListener('popstate', () => {
  remember();
  location$.set(current());
  const y = scrolls.get(location$.get().key) || 0;
  // Give the page a frame or two to render cached content first.
  requestAnimationFrame(() => requestAnimationFrame(() => window.scrollTo(0, y)));
});

export function useLocation() {
  return useStore(location$);
}

export function useQuery() {
  const loc = useLocation();
  return new URLSearchParams(loc.search);
}

// match('/u/:username/', '/u/ann/') -> {username: 'ann'} or null.
export function match(pattern, path) {
  const p = pattern.split('/');
  const s = path.split('/');
  if (p.length !== s.length) return null;
  const params = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(':')) {
      if (!s[i]) return null;
      try {
        params[p[i].slice(1)] = decodeURIComponent(s[i]);
      } catch {
        return null;
      }
    } else if (p[i] !== s[i]) {
      return null;
    }
  }
  return params;
}

export function Link({ href, onClick, children, ...rest }) {
  const click = (e) => {
    if (onClick) onClick(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    if (rest.target) return;
    e.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={click} {...rest}>
      {children}
    </a>
  );
}

export const profilePath = (username) => `/u/${encodeURIComponent(username)}/`;
export const postPath = (id) => `/p/${id}`;
export const tagPath = (tag) => `/tags/${encodeURIComponent(tag)}`;
