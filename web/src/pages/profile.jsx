// Profiles: header (avatar, counts, bio, follow / requested / following,
// message), the grid of posts or saved posts, followers and following
// lists, and the follow requests of a private account.
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, seg } from '../api.js';
import { Icon } from '../icons.jsx';
import { Grid } from '../post.jsx';
import { Link, navigate, profilePath } from '../router.jsx';
import { me, showToast, useStore } from '../store.js';
import { Avatar, Dialog, Empty, ErrorState, ListFooter, Page, Spinner, usePaged } from '../ui.jsx';
import { FollowButton, UserList } from '../users.jsx';

const Num = ({ n }) => <strong>{(Number(n) || 0).toLocaleString()}</strong>;

function useUser(username) {
  const [user, setUser] = useState(null);
  const [error, setError] = useState(null);
  const load = useCallback(async () => {
    setError(null);
    try {
      setUser(await api.get(`/users/${seg(username)}`));
    } catch (e) {
      setError(e);
    }
  }, [username]);
  useEffect(() => {
    setUser(null);
    load();
  }, [load]);
  return { user, setUser, error, load };
}

async function startConversation(username) {
  try {
    const c = await api.post('/conversations', { participants: [username] });
    navigate('/direct/' + c.id);
  } catch (e) {
    showToast(e.message, 'error');
  }
}

function PostsGrid({ username, saved }) {
  const fetchPage = useCallback(
    (cursor) => (saved ? api.get('/me/saved', { cursor, limit: 24 }) : api.get(`/users/${seg(username)}/posts`, { cursor, limit: 24 })),
    [username, saved],
  );
  const list = usePaged((saved ? 'saved:' : 'posts:') + username, fetchPage);
  if (!list.started && list.error) {
    if (list.error.status === 403 || list.error.status === 404) return <PrivateNotice />;
    return <ErrorState error={list.error} onRetry={list.loadMore} />;
  }
  if (!list.started) return <Spinner />;
  if (!list.items.length)
    return saved ? (
      <Empty icon="bookmark" title="Nothing saved yet">
        <p class="muted">Save photos you want to see again; only you can see what you've saved.</p>
      </Empty>
    ) : (
      <Empty icon="image" title="No posts yet" />
    );
  return (
    <>
      <Grid posts={list.items} />
      <ListFooter list={list} />
    </>
  );
}

function PrivateNotice() {
  return (
    <Empty icon="lock" title="This account is private">
      <p class="muted">Follow this account to see their photos.</p>
    </Empty>
  );
}

export function Profile({ username, tab }) {
  const viewer = useStore(me);
  const { user, setUser, error, load } = useUser(username);
  if (error) return <Page title={username}><ErrorState error={error.status === 404 ? { ...error, message: "Sorry, this page isn't available. The link may be broken, or the profile may have been removed." } : error} onRetry={load} /></Page>;
  if (!user) return <Page title={username}><Spinner /></Page>;

  const isMe = viewer && viewer.id === user.id;
  const canSee = isMe || !user.is_private || user.follow_state === 'following';
  const base = profilePath(user.username);
  const site = user.website && /^https?:\/\//i.test(user.website) ? user.website : user.website ? 'https://' + user.website : null;
  return (
    <Page title={`${user.display_name || user.username} (@${user.username})`}>
      <div class="profile">
        <header class="profile-head">
          <div class="profile-avatar">
            <Avatar user={user} size={150} />
          </div>
          <div class="profile-info">
            <div class="profile-title">
              <h1 class="profile-username">{user.username}</h1>
              {user.is_private && (
                <span class="muted" title="Private account">
                  <Icon name="lock" size={16} />
                  <span class="sr-only">Private account</span>
                </span>
              )}
              <div class="profile-buttons">
                {isMe ? (
                  <>
                    <Link href="/settings" class="btn">
                      Edit profile
                    </Link>
                    {user.is_private && (
                      <Link href="/requests" class="btn">
                        Requests
                      </Link>
                    )}
                  </>
                ) : (
                  <>
                    <FollowButton user={user} onChange={setUser} />
                    {viewer && (
                      <button type="button" class="btn" onClick={() => startConversation(user.username)}>
                        Message
                      </button>
                    )}
                    {viewer && <MoreButton user={user} />}
                  </>
                )}
              </div>
            </div>
            <ul class="profile-counts">
              <li>
                <Num n={user.posts_count} /> {user.posts_count === 1 ? 'post' : 'posts'}
              </li>
              <li>
                {canSee ? (
                  <Link href={base + 'followers'}>
                    <Num n={user.followers_count} /> {user.followers_count === 1 ? 'follower' : 'followers'}
                  </Link>
                ) : (
                  <>
                    <Num n={user.followers_count} /> {user.followers_count === 1 ? 'follower' : 'followers'}
                  </>
                )}
              </li>
              <li>
                {canSee ? (
                  <Link href={base + 'following'}>
                    <Num n={user.following_count} /> following
                  </Link>
                ) : (
                  <>
                    <Num n={user.following_count} /> following
                  </>
                )}
              </li>
            </ul>
            <div class="profile-bio">
              {user.display_name && <p class="strong">{user.display_name}</p>}
              {user.bio && <p class="bio">{user.bio}</p>}
              {site && (
                <a href={site} rel="noopener noreferrer nofollow" target="_blank" class="website">
                  {user.website.replace(/^https?:\/\//i, '')}
                </a>
              )}
              {!isMe && user.follows_me && <p class="muted small">Follows you</p>}
            </div>
          </div>
        </header>
        {isMe && (
          <nav class="profile-tabs" aria-label="Profile sections">
            <Link href={base} class={tab !== 'saved' ? 'on' : ''} aria-current={tab !== 'saved' ? 'page' : undefined}>
              <Icon name="grid" size={14} /> Posts
            </Link>
            <Link href={base + 'saved'} class={tab === 'saved' ? 'on' : ''} aria-current={tab === 'saved' ? 'page' : undefined}>
              <Icon name="bookmark" size={14} /> Saved
            </Link>
          </nav>
        )}
        {!isMe && <div class="profile-tabs" />}
        {canSee ? <PostsGrid key={tab + user.username} username={user.username} saved={isMe && tab === 'saved'} /> : <PrivateNotice />}
      </div>
    </Page>
  );
}

// Less common actions behind "…": block.
function MoreButton({ user }) {
  const [open, setOpen] = useState(false);
  const block = async () => {
    try {
      await api.post(`/users/${seg(user.username)}/block`);
      showToast(`${user.username} is blocked. They can't find your profile, posts or message you.`);
      navigate('/', { replace: true });
    } catch (e) {
      showToast(e.message, 'error');
    }
  };
  return (
    <>
      <button type="button" class="icon-btn" aria-label={`More options for ${user.username}`} onClick={() => setOpen(true)}>
        <Icon name="more" />
      </button>
      {open && (
        <Dialog title={user.username} onClose={() => setOpen(false)}>
          <div class="form">
            <p class="muted small">Blocking removes follows both ways. They won't be told.</p>
            <button type="button" class="btn block danger" onClick={block}>
              Block {user.username}
            </button>
            <button type="button" class="btn block" onClick={() => setOpen(false)}>
              Cancel
            </button>
          </div>
        </Dialog>
      )}
    </>
  );
}

export function FollowList({ username, which }) {
  const fetchPage = useCallback((cursor) => api.get(`/users/${seg(username)}/${which}`, { cursor }), [username, which]);
  const list = usePaged(`${which}:${username}`, fetchPage);
  const title = which === 'followers' ? 'Followers' : 'Following';
  return (
    <Page title={`${title} · ${username}`} narrow>
      <h1 class="page-title">
        <Link href={profilePath(username)} class="back" aria-label={`Back to ${username}`}>
          <Icon name="left" />
        </Link>
        {title}
      </h1>
      {!list.started && list.error && list.error.status === 403 ? (
        <PrivateNotice />
      ) : (
        <UserList list={list} empty={which === 'followers' ? 'No followers yet.' : 'Not following anyone yet.'} />
      )}
    </Page>
  );
}

export function Requests() {
  const fetchPage = useCallback((cursor) => api.get('/me/follow-requests', { cursor }), []);
  const list = usePaged('requests', fetchPage);
  const answer = async (u, verb) => {
    try {
      await api.post(`/me/follow-requests/${seg(u.username)}/${verb}`);
      list.update((items) => items.filter((x) => x.id !== u.id));
      showToast(verb === 'approve' ? `${u.username} can now see your posts` : 'Request removed');
    } catch (e) {
      showToast(e.message, 'error');
    }
  };
  return (
    <Page title="Follow requests" narrow>
      <h1 class="page-title">Follow requests</h1>
      {list.started && !list.items.length && !list.error && <p class="muted center">No pending requests.</p>}
      <ul class="user-list">
        {list.items.map((u) => (
          <li class="user-row" key={u.id}>
            <Link href={profilePath(u.username)} class="user-link">
              <Avatar user={u} size={44} />
              <span class="user-names">
                <span class="username">{u.username}</span>
                {u.display_name && <span class="muted">{u.display_name}</span>}
              </span>
            </Link>
            <button type="button" class="btn primary small" onClick={() => answer(u, 'approve')} aria-label={`Confirm ${u.username}`}>
              Confirm
            </button>
            <button type="button" class="btn small" onClick={() => answer(u, 'deny')} aria-label={`Delete request from ${u.username}`}>
              Delete
            </button>
          </li>
        ))}
      </ul>
      <ListFooter list={list} />
    </Page>
  );
}
