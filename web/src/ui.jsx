// Small shared pieces: avatars, error and empty states, field errors,
// relative times, captions with links, dialogs and paged lists.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { Link, profilePath, tagPath } from './router.jsx';
import { getSession, onSession } from './api.js';
import { Icon } from './icons.jsx';
import { online, retryAll, useStore } from './store.js';

export function Avatar({ user, size = 32 }) {
  const name = (user && user.username) || '?';
  if (user && user.avatar_url) {
    return (
      <img
        class="avatar"
        src={user.avatar_url}
        width={size}
        height={size}
        alt={`${name}'s profile picture`}
        loading="lazy"
        decoding="async"
        style={{ width: size + 'px', height: size + 'px' }}
      />
    );
  }
  // A coloured initial, the same colour for the same name.
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return (
    <span
      class="avatar avatar-initial"
      role="img"
      aria-label={`${name}'s profile picture`}
      style={{ width: size + 'px', height: size + 'px', fontSize: Math.round(size * 0.42) + 'px', background: `hsl(${hash % 360} 55% 55%)` }}
    >
      {name[0].toUpperCase()}
    </span>
  );
}

export function Spinner({ label = 'Loading' }) {
  return (
    <div class="spinner" role="status">
      <span class="spinner-ring" aria-hidden="true" />
      <span class="sr-only">{label}</span>
    </div>
  );
}

// An API error as a person reads it, with a retry button when retrying can help.
export function ErrorState({ error, onRetry, compact }) {
  // Coming back online, or "Retry" in the offline banner, retries every
  // failed load on the screen.
  const isOnline = useStore(online);
  const tick = useStore(retryAll);
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    if (error && onRetry && error.retryable && isOnline) onRetry();
  }, [isOnline, tick]);
  if (!error) return null;
  const title =
    error.status === 0
      ? "You're offline"
      : error.status === 503 || error.status === 504
        ? 'Temporarily unavailable'
        : error.status === 404
          ? 'Not found'
          : error.status === 403
            ? 'Not available'
            : "Couldn't load this";
  return (
    <div class={'error-state' + (compact ? ' compact' : '')} role="alert">
      {!compact && <strong>{title}</strong>}
      <p>{error.message}</p>
      {onRetry && (error.retryable || error.status === undefined) && (
        <button type="button" class="btn" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

// A field message as a sentence: the API sends fragments ("is already
// taken"), shown as "Username is already taken."
export function fieldSentence(label, text) {
  if (!text) return text;
  let t = String(text).trim();
  if (/^[a-z]/.test(t) && label) t = `${label} ${t}`;
  t = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(t) ? t : t + '.';
}

// The message under a form field, from the error envelope's `fields`.
export function FieldError({ id, text }) {
  if (!text) return null;
  return (
    <p class="field-error" id={id} role="alert">
      {text}
    </p>
  );
}

export function Empty({ icon, title, children }) {
  return (
    <div class="empty">
      {icon && <Icon name={icon} size={48} />}
      <h2>{title}</h2>
      {children}
    </div>
  );
}

const UNITS = [
  [60, 's'],
  [60, 'm'],
  [24, 'h'],
  [7, 'd'],
];

export function timeAgo(iso) {
  const t = Date.parse(iso);
  if (!t) return '';
  let v = Math.max(0, (Date.now() - t) / 1000);
  if (v < 10) return 'now';
  for (const [n, u] of UNITS) {
    if (v < n) return Math.floor(v) + u;
    v /= n;
  }
  if (v < 52) return Math.floor(v) + 'w';
  return new Date(t).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

export function Time({ iso }) {
  return (
    <time dateTime={iso} title={iso ? new Date(iso).toLocaleString() : ''}>
      {timeAgo(iso)}
    </time>
  );
}

// Caption or comment text with #tags and @mentions as links.
export function RichText({ text }) {
  if (!text) return null;
  const out = [];
  const re = /([#@])([\p{L}\p{N}_.]+)/gu;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    // Only at a word start, so e-mail addresses stay plain text.
    if (m.index > 0 && /[\p{L}\p{N}_]/u.test(text[m.index - 1])) continue;
    let word = m[2];
    if (m[1] === '@') word = word.replace(/\.+$/, '');
    else word = word.replace(/\..*$/, '');
    if (!word) continue;
    if (m.index > last) out.push(text.slice(last, m.index));
    const href = m[1] === '#' ? tagPath(word.toLowerCase()) : profilePath(word.toLowerCase());
    out.push(
      <Link href={href} class="tag-link">
        {m[1] + word}
      </Link>,
    );
    last = m.index + 1 + word.length;
    re.lastIndex = last;
  }
  if (last < text.length) out.push(text.slice(last));
  return <>{out}</>;
}

export function count(n, one, many) {
  const v = Number(n) || 0;
  const shown = v >= 1e6 ? (v / 1e6).toFixed(1).replace(/\.0$/, '') + 'M' : v >= 1e4 ? (v / 1e3).toFixed(1).replace(/\.0$/, '') + 'K' : v.toLocaleString();
  return `${shown} ${v === 1 ? one : many || one + 's'}`;
}

// A modal on the native <dialog>: focus is trapped, Escape closes it.
export function Dialog({ title, onClose, children, wide }) {
  const ref = useRef(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => {
      if (d && d.open) d.close();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      class={'dialog' + (wide ? ' wide' : '')}
      aria-label={title}
      onClose={onClose}
      onClick={(e) => {
        if (e.target === ref.current) onClose();
      }}
    >
      <div class="dialog-inner">
        <header class="dialog-head">
          <h2>{title}</h2>
          <button type="button" class="icon-btn" aria-label="Close" onClick={onClose}>
            <Icon name="close" />
          </button>
        </header>
        <div class="dialog-body">{children}</div>
      </div>
    </dialog>
  );
}

// Paged lists ({items, next_cursor}) with a memory cache per key, so going
// back to a list shows it at once where it was.
const pageCache = new Map();
let cacheOwner = getSession() && getSession().user ? getSession().user.id : null;
// Another person signing in must never see the last one's cached lists.
onSession((sess) => {
  const owner = sess && sess.user ? sess.user.id : null;
  if (owner !== cacheOwner) pageCache.clear();
  cacheOwner = owner;
});

export function usePaged(key, fetchPage) {
  const cached = key ? pageCache.get(key) : null;
  const [state, setState] = useState(cached || { items: [], cursor: null, done: false, started: false });
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState(null);
  const busy = useRef(false);
  // Bumped by reload() and a new key: answers to older requests are dropped.
  const generation = useRef(0);
  const live = useRef(state);
  live.current = state;

  const reset = (next) => {
    generation.current++;
    busy.current = false;
    live.current = next;
    setState(next);
    setLoading(false);
    setError(null);
  };

  const firstKey = useRef(true);
  useEffect(() => {
    if (firstKey.current) {
      firstKey.current = false;
      return;
    }
    reset((key && pageCache.get(key)) || { items: [], cursor: null, done: false, started: false });
  }, [key]);

  useEffect(() => {
    if (key && state.started) pageCache.set(key, state);
    if (pageCache.size > 30) pageCache.delete(pageCache.keys().next().value);
  }, [key, state]);

  const loadMore = useCallback(async () => {
    const s = live.current;
    if (busy.current || s.done || !key) return;
    busy.current = true;
    const gen = generation.current;
    setLoading(true);
    setError(null);
    try {
      const page = await fetchPage(s.cursor);
      if (gen !== generation.current) return;
      const seen = new Set(s.items.map((i) => i.id || i.tag));
      const fresh = (page.items || []).filter((i) => !(i.id || i.tag) || !seen.has(i.id || i.tag));
      const next = { items: s.items.concat(fresh), cursor: page.next_cursor, done: !page.next_cursor, started: true };
      live.current = next;
      setState(next);
    } catch (e) {
      if (gen === generation.current) setError(e);
    } finally {
      if (gen === generation.current) {
        busy.current = false;
        setLoading(false);
      }
    }
  }, [key, fetchPage]);

  const reload = useCallback(() => {
    if (key) pageCache.delete(key);
    reset({ items: [], cursor: null, done: false, started: false });
  }, [key]);

  // First page when the list is new.
  useEffect(() => {
    if (!state.started && !state.done && !busy.current && !error) loadMore();
  }, [state, loadMore, error]);

  const update = useCallback((fn) => setState((s) => (live.current = { ...s, items: fn(s.items) })), []);

  return { items: state.items, done: state.done, started: state.started, loading, error, loadMore, reload, update };
}

export function forgetPages(prefix) {
  for (const k of [...pageCache.keys()]) if (k.startsWith(prefix)) pageCache.delete(k);
}

// Calls onVisible when scrolled near; the infinite scroll trigger.
export function Sentinel({ onVisible, disabled }) {
  const ref = useRef(null);
  useEffect(() => {
    if (disabled || !ref.current) return undefined;
    const io = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && onVisible(), {
      rootMargin: '800px 0px',
    });
    io.observe(ref.current);
    return () => io.disconnect();
  }, [onVisible, disabled]);
  return <div ref={ref} class="sentinel" aria-hidden="true" />;
}

// The bottom of a paged list: spinner, error with retry, or the trigger.
export function ListFooter({ list, endText }) {
  if (list.error) return <ErrorState error={list.error} onRetry={list.loadMore} compact />;
  if (list.loading) return <Spinner />;
  if (list.done) return endText && list.items.length > 0 ? <p class="list-end">{endText}</p> : null;
  return (
    <>
      <Sentinel onVisible={list.loadMore} />
      <div class="load-more">
        <button type="button" class="btn-link" onClick={list.loadMore}>
          Load more
        </button>
      </div>
    </>
  );
}

export function Page({ title, children, narrow, back }) {
  useEffect(() => {
    document.title = title ? `${title} · Social` : 'Social';
  }, [title]);
  return <div class={'page' + (narrow ? ' narrow' : '')}>{children}</div>;
}
