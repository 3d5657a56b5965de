// Home: the feed with infinite scroll, and suggestions when it is empty.
import { useCallback } from 'preact/hooks';
import { api } from '../api.js';
import { Link } from '../router.jsx';
import { PostCard } from '../post.jsx';
import { me, useStore } from '../store.js';
import { ErrorState, ListFooter, Page, Spinner, usePaged } from '../ui.jsx';
import { UserRow } from '../users.jsx';

function Suggestions() {
  const fetchPage = useCallback((cursor) => api.get('/explore/users', { cursor, limit: 10 }), []);
  const list = usePaged('suggest', fetchPage);
  if (list.error || !list.items.length) return null;
  const change = (u) => list.update((items) => items.map((x) => (x.id === u.id ? u : x)));
  return (
    <section class="card suggestions" aria-label="Suggested for you">
      <h2 class="section-title">Suggested for you</h2>
      <ul class="user-list">
        {list.items.slice(0, 10).map((u) => (
          <UserRow key={u.id} user={u} onChange={change} />
        ))}
      </ul>
    </section>
  );
}

export function Feed() {
  const user = useStore(me);
  const fetchPage = useCallback((cursor) => api.get('/feed', { cursor, limit: 10 }), []);
  const list = usePaged('feed:' + (user ? user.id : ''), fetchPage);
  const change = (p) => list.update((items) => items.map((x) => (x.id === p.id ? p : x)));

  return (
    <Page title="Home">
      <div class="feed">
        <div class="feed-head">
          <h1 class="sr-only">Home</h1>
          <button type="button" class="btn-link refresh" onClick={list.reload} aria-label="Refresh feed">
            Refresh
          </button>
        </div>
        {!list.started && list.error && <ErrorState error={list.error} onRetry={list.loadMore} />}
        {!list.started && !list.error && <Spinner label="Loading your feed" />}
        {list.started && !list.items.length && (
          <div class="empty">
            <h2>Welcome{user && user.display_name ? ', ' + user.display_name : ''}!</h2>
            <p class="muted">
              Follow people to see their photos here, or <Link href="/create">share your first photo</Link>.
            </p>
          </div>
        )}
        {list.items.map((p, i) => (
          <PostCard key={p.id} post={p} onChange={change} eager={i === 0} />
        ))}
        {list.started && <ListFooter list={list} endText="You're all caught up." />}
        {list.started && list.items.length < 3 && <Suggestions />}
      </div>
    </Page>
  );
}
