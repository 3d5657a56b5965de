// Search (accounts, tags, posts), the hashtag page, and explore with trends
// and suggested accounts.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, seg } from '../api.js';
import { Icon } from '../icons.jsx';
import { Grid } from '../post.jsx';
import { Link, navigate, tagPath, useQuery } from '../router.jsx';
import { Empty, ErrorState, ListFooter, Page, Spinner, count, usePaged } from '../ui.jsx';
import { UserList, UserRow } from '../users.jsx';

const TABS = [
  ['accounts', 'Accounts'],
  ['tags', 'Tags'],
  ['posts', 'Posts'],
];

function TagList({ list }) {
  return (
    <>
      {list.started && !list.items.length && !list.error && <p class="muted center">No hashtags found.</p>}
      <ul class="tag-list">
        {list.items.map((t) => (
          <li key={t.tag}>
            <Link href={tagPath(t.tag)} class="tag-row">
              <span class="tag-icon" aria-hidden="true">
                #
              </span>
              <span>
                <span class="strong">#{t.tag}</span>
                <span class="muted block small">{count(t.post_count, 'post')}</span>
              </span>
            </Link>
          </li>
        ))}
      </ul>
      <ListFooter list={list} />
    </>
  );
}

function PostResults({ list }) {
  if (!list.started && list.error) return <ErrorState error={list.error} onRetry={list.loadMore} />;
  return (
    <>
      {list.started && !list.items.length && !list.error && <p class="muted center">No posts found.</p>}
      <Grid posts={list.items} />
      <ListFooter list={list} />
    </>
  );
}

function Results({ q, tab }) {
  const path = tab === 'tags' ? '/search/hashtags' : tab === 'posts' ? '/search/posts' : '/search/users';
  const fetchPage = useCallback((cursor) => api.get(path, { q, cursor }), [path, q]);
  const list = usePaged(q ? `search:${tab}:${q}` : null, fetchPage);
  if (!q) return null;
  if (!list.started && !list.error) return <Spinner />;
  if (tab === 'tags') return <TagList list={list} />;
  if (tab === 'posts') return <PostResults list={list} />;
  if (!list.started && list.error) return <ErrorState error={list.error} onRetry={list.loadMore} />;
  return <UserList list={list} empty="No accounts found." />;
}

export function Search() {
  const params = useQuery();
  const q = params.get('q') || '';
  const tab = params.get('type') || 'accounts';
  const [text, setText] = useState(q);
  const input = useRef(null);
  useEffect(() => {
    if (!q && input.current) input.current.focus();
  }, []);

  // Typing updates the URL (replace, not push) after a short pause.
  useEffect(() => {
    const t = setTimeout(() => {
      const v = text.trim();
      if (v === q) return;
      navigate('/search' + (v ? `?q=${encodeURIComponent(v)}${tab !== 'accounts' ? '&type=' + tab : ''}` : ''), { replace: true });
    }, 300);
    return () => clearTimeout(t);
  }, [text]);

  return (
    <Page title={q ? `Search: ${q}` : 'Search'} narrow>
      <h1 class="page-title">Search</h1>
      <form
        role="search"
        class="search-box"
        onSubmit={(e) => {
          e.preventDefault();
          const v = text.trim();
          navigate('/search' + (v ? `?q=${encodeURIComponent(v)}&type=${tab}` : ''), { replace: true });
        }}
      >
        <Icon name="search" size={18} />
        <label for="search-input" class="sr-only">
          Search
        </label>
        <input id="search-input" ref={input} type="search" value={text} placeholder="Search accounts, #tags, posts" autocomplete="off" onInput={(e) => setText(e.currentTarget.value)} />
      </form>
      <nav class="tabs" aria-label="Search results">
        {TABS.map(([k, label]) => (
          <Link key={k} href={`/search?q=${encodeURIComponent(q)}&type=${k}`} class={tab === k ? 'on' : ''} aria-current={tab === k ? 'page' : undefined}>
            {label}
          </Link>
        ))}
      </nav>
      {q ? <Results key={tab + q} q={tab === 'tags' ? q.replace(/^#/, '') : q} tab={tab} /> : <Trends compact />}
    </Page>
  );
}

export function Hashtag({ tag }) {
  const [info, setInfo] = useState(null);
  const [error, setError] = useState(null);
  const fetchPage = useCallback((cursor) => api.get(`/hashtags/${seg(tag)}/posts`, { cursor, limit: 24 }), [tag]);
  const list = usePaged('tag:' + tag, fetchPage);
  const load = useCallback(async () => {
    setError(null);
    try {
      setInfo(await api.get(`/hashtags/${seg(tag)}`));
    } catch (e) {
      setError(e);
    }
  }, [tag]);
  useEffect(() => {
    load();
  }, [load]);
  return (
    <Page title={'#' + tag}>
      <div class="profile">
        <header class="tag-head">
          <span class="tag-icon big" aria-hidden="true">
            #
          </span>
          <div>
            <h1 class="profile-username">#{tag}</h1>
            {info && <p class="muted">{count(info.post_count, 'post')}</p>}
            {error && <ErrorState error={error} onRetry={load} compact />}
          </div>
        </header>
        {!list.started && list.error && <ErrorState error={list.error} onRetry={list.loadMore} />}
        {!list.started && !list.error && <Spinner />}
        {list.started && !list.items.length && <Empty icon="image" title="No posts yet" />}
        <Grid posts={list.items} />
        {list.started && <ListFooter list={list} />}
      </div>
    </Page>
  );
}

const WINDOWS = [
  ['1h', 'Hour'],
  ['24h', 'Day'],
  ['7d', 'Week'],
];

export function Trends({ compact }) {
  const [win, setWin] = useState('24h');
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const load = useCallback(async () => {
    setError(null);
    try {
      setData(await api.get('/trends/hashtags', { window: win }));
    } catch (e) {
      setError(e);
    }
  }, [win]);
  useEffect(() => {
    setData(null);
    load();
  }, [load]);
  const items = data ? (data.items || []).slice(0, compact ? 8 : 15) : [];
  return (
    <section class="card trends" aria-labelledby="trends-title">
      <div class="page-title-row">
        <h2 class="section-title" id="trends-title">
          <Icon name="trend" size={18} /> Trending
        </h2>
        <div class="segmented" role="group" aria-label="Time window">
          {WINDOWS.map(([k, label]) => (
            <button key={k} type="button" class={win === k ? 'on' : ''} aria-pressed={win === k ? 'true' : 'false'} onClick={() => setWin(k)}>
              {label}
            </button>
          ))}
        </div>
      </div>
      {error && <ErrorState error={error} onRetry={load} compact />}
      {!data && !error && <Spinner />}
      {data && !items.length && <p class="muted small">Nothing trending right now.</p>}
      <ol class="trend-list">
        {items.map((t, i) => (
          <li key={t.tag}>
            <Link href={tagPath(t.tag)} class="trend">
              <span class="trend-rank">{i + 1}</span>
              <span>
                <span class="strong">#{t.tag}</span>
                <span class="muted block small">{count(t.count, 'post')}</span>
              </span>
            </Link>
          </li>
        ))}
      </ol>
    </section>
  );
}

function SuggestedUsers() {
  const fetchPage = useCallback((cursor) => api.get('/explore/users', { cursor, limit: 6 }), []);
  const list = usePaged('explore-users', fetchPage);
  if (list.error || (list.started && !list.items.length)) return null;
  const change = (u) => list.update((items) => items.map((x) => (x.id === u.id ? u : x)));
  return (
    <section class="card" aria-labelledby="suggested-title">
      <h2 class="section-title" id="suggested-title">
        Suggested for you
      </h2>
      <ul class="user-list">
        {list.items.slice(0, 6).map((u) => (
          <UserRow key={u.id} user={u} onChange={change} />
        ))}
      </ul>
    </section>
  );
}

export function Explore() {
  const fetchPage = useCallback((cursor) => api.get('/explore', { cursor, limit: 24 }), []);
  const list = usePaged('explore', fetchPage);
  return (
    <Page title="Explore">
      <div class="explore">
        <h1 class="sr-only">Explore</h1>
        <div class="explore-side">
          <Trends compact />
          <SuggestedUsers />
        </div>
        <div class="explore-main">
          {!list.started && list.error && <ErrorState error={list.error} onRetry={list.loadMore} />}
          {!list.started && !list.error && <Spinner />}
          {list.started && !list.items.length && <Empty icon="explore" title="Nothing to explore yet" />}
          <Grid posts={list.items} />
          {list.started && <ListFooter list={list} />}
        </div>
      </div>
    </Page>
  );
}
