// People: the follow button (none / requested / following), a user row and
// a paged list of users (followers, following, likers, search results).
import { useState } from 'preact/hooks';
import { api, seg } from './api.js';
import { Link, navigate, profilePath } from './router.jsx';
import { me, showToast, useStore } from './store.js';
import { Avatar, ListFooter } from './ui.jsx';

export function FollowButton({ user, onChange, small }) {
  const viewer = useStore(me);
  const [busy, setBusy] = useState(false);
  if (!user || (viewer && viewer.id === user.id)) return null;
  const state = user.follow_state || 'none';
  const label = state === 'following' ? 'Following' : state === 'requested' ? 'Requested' : user.follows_me ? 'Follow back' : 'Follow';
  const click = async () => {
    if (!viewer) {
      navigate('/signin');
      return;
    }
    if (state === 'following' && user.is_private && !confirm(`Unfollow ${user.username}? You'll need to ask again to see their posts.`)) return;
    setBusy(true);
    try {
      const path = `/users/${seg(user.username)}/follow`;
      const r = state === 'none' ? await api.post(path) : await api.del(path);
      const next = r && r.follow_state ? r.follow_state : state === 'none' ? 'following' : 'none';
      const delta = (next === 'following' ? 1 : 0) - (state === 'following' ? 1 : 0);
      onChange &&
        onChange({
          ...user,
          follow_state: next,
          followed_by_me: next === 'following',
          followers_count: Math.max(0, (user.followers_count || 0) + delta),
        });
    } catch (e) {
      showToast(e.message, 'error');
    } finally {
      setBusy(false);
    }
  };
  return (
    <button
      type="button"
      class={'btn' + (state === 'none' ? ' primary' : '') + (small ? ' small' : '')}
      disabled={busy}
      onClick={click}
      aria-label={`${label} ${user.username}`}
      title={state === 'requested' ? 'Cancel request' : state === 'following' ? 'Unfollow' : undefined}
    >
      {label}
    </button>
  );
}

export function UserRow({ user, onChange, children }) {
  return (
    <li class="user-row">
      <Link href={profilePath(user.username)} class="user-link">
        <Avatar user={user} size={44} />
        <span class="user-names">
          <span class="username">{user.username}</span>
          {user.display_name && <span class="muted">{user.display_name}</span>}
        </span>
      </Link>
      {children || <FollowButton user={user} onChange={onChange} small />}
    </li>
  );
}

export function UserList({ list, empty }) {
  const change = (u) => list.update((items) => items.map((x) => (x.id === u.id ? u : x)));
  return (
    <>
      {list.started && !list.items.length && !list.error && <p class="muted center">{empty}</p>}
      <ul class="user-list">
        {list.items.map((u) => (
          <UserRow key={u.id} user={u} onChange={change} />
        ))}
      </ul>
      <ListFooter list={list} />
    </>
  );
}
