// Notifications, newest first, live: new ones appear at the top while the
// page is open, and opening the page marks everything read.
import { useCallback, useEffect, useRef } from 'preact/hooks';
import { api } from '../api.js';
import { onLive } from '../live.js';
import { Link, postPath, profilePath } from '../router.jsx';
import { unread } from '../store.js';
import { Avatar, Empty, ErrorState, ListFooter, Page, Spinner, Time, usePaged } from '../ui.jsx';
import { FollowButton } from '../users.jsx';

const TEXT = {
  like: 'liked your post.',
  comment: 'commented:',
  follow: 'started following you.',
  follow_request: 'requested to follow you.',
  follow_accepted: 'accepted your follow request.',
  mention: 'mentioned you:',
  message: 'sent you a message:',
};

function target(n) {
  if (n.type === 'follow_request') return '/requests';
  if (n.type === 'message') return '/direct';
  if (n.post_id) return postPath(n.post_id);
  return n.actor ? profilePath(n.actor.username) : '/notifications';
}

function Item({ n }) {
  const a = n.actor || {};
  return (
    <li class={'notif' + (n.read ? '' : ' unread')}>
      <Link href={profilePath(a.username)} class="notif-avatar" tabIndex={-1} aria-hidden="true">
        <Avatar user={a} size={44} />
      </Link>
      <Link href={target(n)} class="notif-text">
        <span class="username">{a.username}</span> {TEXT[n.type] || n.type}
        {n.text && <span class="notif-quote"> {n.text}</span>}{' '}
        <span class="muted">
          <Time iso={n.created_at} />
        </span>
      </Link>
      {n.type === 'follow' && a.username && a.follow_state !== undefined && <FollowButton user={a} small />}
    </li>
  );
}

export function Notifications() {
  const fetchPage = useCallback((cursor) => api.get('/notifications', { cursor }), []);
  const list = usePaged('notifications', fetchPage);
  const marked = useRef(null);

  // Everything shown is read: mark up to the newest one.
  const newest = list.items[0];
  useEffect(() => {
    if (!newest || marked.current === newest.id) return;
    marked.current = newest.id;
    api
      .post('/notifications/read', { up_to_id: newest.id })
      .then(() => unread.set((u) => ({ ...u, notifications: 0 })))
      .catch(() => {});
  }, [newest && newest.id]);

  useEffect(
    () =>
      onLive('notification', (n) => {
        list.update((items) => (items.some((x) => x.id === n.id) ? items : [n, ...items]));
        return true;
      }),
    [list.update],
  );

  return (
    <Page title="Notifications" narrow>
      <h1 class="page-title">Notifications</h1>
      {!list.started && (list.error ? <ErrorState error={list.error} onRetry={list.loadMore} /> : <Spinner />)}
      {list.started && !list.items.length && (
        <Empty icon="heart" title="Activity on your posts">
          <p class="muted">When someone likes or comments on your posts, you'll see it here.</p>
        </Empty>
      )}
      <ul class="notif-list">
        {list.items.map((n) => (
          <Item key={n.id} n={n} />
        ))}
      </ul>
      {list.started && <ListFooter list={list} />}
    </Page>
  );
}
