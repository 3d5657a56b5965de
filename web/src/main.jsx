// The app shell: navigation (side bar on desktop, top bar and bottom tab bar
// on phones), the route table, the offline banner and the toast.
import { render } from 'preact';
import { useEffect, useLayoutEffect, useRef } from 'preact/hooks';
import { getSession } from './api.js';
import { Icon } from './icons.jsx';
import { refreshCounts, startLive } from './live.js';
import { Link, match, navigate, profilePath, useLocation } from './router.jsx';
import { me, online, retryAll, toast, unread, useStore } from './store.js';
import { Avatar, Empty, Page } from './ui.jsx';
import { SignIn, SignUp } from './pages/auth.jsx';
import { Feed } from './pages/feed.jsx';
import { LikesPage, PostPage } from './pages/post.jsx';
import { Create } from './pages/create.jsx';
import { FollowList, Profile, Requests } from './pages/profile.jsx';
import { Settings } from './pages/settings.jsx';
import { Inbox, Thread } from './pages/direct.jsx';
import { Notifications } from './pages/notifications.jsx';
import { Explore, Hashtag, Search } from './pages/discover.jsx';
import './styles.css';

// [pattern, component(params, query), needs a signed-in user]
const ROUTES = [
  ['/', () => <Feed />, true],
  ['/signin', () => <SignIn />, false, 'guest'],
  ['/signup', () => <SignUp />, false, 'guest'],
  ['/create', () => <Create />, true],
  ['/p/:id', (p) => <PostPage id={p.id} />, false],
  ['/p/:id/likes', (p) => <LikesPage id={p.id} />, false],
  ['/u/:username/', (p) => <Profile username={p.username} />, false],
  ['/u/:username', (p) => <Profile username={p.username} />, false],
  ['/u/:username/saved', (p) => <Profile username={p.username} tab="saved" />, true],
  ['/u/:username/followers', (p) => <FollowList username={p.username} which="followers" />, true],
  ['/u/:username/following', (p) => <FollowList username={p.username} which="following" />, true],
  ['/settings', () => <Settings />, true],
  ['/requests', () => <Requests />, true],
  ['/direct', () => <Inbox />, true],
  ['/direct/:id', (p) => <Thread id={p.id} />, true],
  ['/notifications', () => <Notifications />, true],
  ['/search', () => <Search />, false],
  ['/explore', () => <Explore />, false],
  ['/tags/:tag', (p) => <Hashtag tag={p.tag} />, false],
];

function Badge({ n, label }) {
  if (!n) return null;
  return (
    <span class="badge" aria-label={`${n} ${label}`} data-badge={label}>
      {n > 99 ? '99+' : n}
    </span>
  );
}

function NavItem({ href, icon, label, active, badge, children }) {
  return (
    <Link href={href} class={'nav-item' + (active ? ' on' : '')} aria-current={active ? 'page' : undefined} aria-label={badge ? `${label}, ${badge} unread` : label}>
      <span class="nav-icon">
        {children || <Icon name={icon} filled={active && icon !== 'search' && icon !== 'plus' && icon !== 'explore'} />}
        <Badge n={badge} label="unread" />
      </span>
      <span class="nav-label">{label}</span>
    </Link>
  );
}

function Nav({ path }) {
  const user = useStore(me);
  const counts = useStore(unread);
  const profile = user ? profilePath(user.username) : '/signin';
  const is = (p) => path === p || (p !== '/' && path.startsWith(p));
  const avatar = user ? <Avatar user={user} size={24} /> : null;
  return (
    <>
      <nav class="side-nav" aria-label="Main">
        <Link href="/" class="logo side-logo" aria-label="Social, home">
          <span class="logo-full">Social</span>
          <span class="logo-mark" aria-hidden="true">
            S
          </span>
        </Link>
        <NavItem href="/" icon="home" label="Home" active={path === '/'} />
        <NavItem href="/search" icon="search" label="Search" active={is('/search')} />
        <NavItem href="/explore" icon="explore" label="Explore" active={is('/explore') || is('/tags/')} />
        <NavItem href="/direct" icon="send" label="Messages" active={is('/direct')} badge={counts.messages} />
        <NavItem href="/notifications" icon="heart" label="Notifications" active={is('/notifications')} badge={counts.notifications} />
        <NavItem href="/create" icon="plus" label="Create" active={is('/create')} />
        <NavItem href={profile} icon="user" label="Profile" active={user && is(profile)}>
          {avatar}
        </NavItem>
        <span class="spacer" />
        <NavItem href="/settings" icon="settings" label="Settings" active={is('/settings')} />
      </nav>
      <header class="top-bar">
        <Link href="/" class="logo" aria-label="Social, home">
          Social
        </Link>
        <span class="spacer" />
        <NavItem href="/notifications" icon="heart" label="Notifications" active={is('/notifications')} badge={counts.notifications} />
        <NavItem href="/direct" icon="send" label="Messages" active={is('/direct')} badge={counts.messages} />
      </header>
      <nav class="tab-bar" aria-label="Tabs">
        <NavItem href="/" icon="home" label="Home" active={path === '/'} />
        <NavItem href="/search" icon="search" label="Search" active={is('/search')} />
        <NavItem href="/create" icon="plus" label="Create" active={is('/create')} />
        <NavItem href="/explore" icon="explore" label="Explore" active={is('/explore') || is('/tags/')} />
        <NavItem href={profile} icon="user" label="Profile" active={user && is(profile)}>
          {avatar}
        </NavItem>
      </nav>
    </>
  );
}

function OfflineBanner() {
  const isOnline = useStore(online);
  if (isOnline) return null;
  return (
    <div class="banner" role="status">
      You're offline. What you see may be out of date.{' '}
      <button type="button" class="btn-link strong" onClick={() => retryAll.set((n) => n + 1)}>
        Retry
      </button>
    </div>
  );
}

function Toast() {
  const t = useStore(toast);
  return (
    <div class="toast-area" aria-live="polite">
      {t && (
        <div key={t.id} class={'toast ' + t.kind} role={t.kind === 'error' ? 'alert' : 'status'}>
          {t.text}
        </div>
      )}
    </div>
  );
}

function Redirect({ to }) {
  useEffect(() => navigate(to, { replace: true }), [to]);
  return null;
}

function NotFound() {
  return (
    <Page title="Not found">
      <Empty title="Sorry, this page isn't available.">
        <p class="muted">
          The link may be broken or the page may have been removed. <Link href="/">Go back home</Link>.
        </p>
      </Empty>
    </Page>
  );
}

function App() {
  const loc = useLocation();
  const user = useStore(me);
  // After a client-side navigation, keyboard and screen-reader users start
  // at the new content (pages that focus a field do so after this).
  const firstRender = useRef(true);
  useLayoutEffect(() => {
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    const main = document.getElementById('main');
    if (main) main.focus({ preventScroll: true });
  }, [loc.key]);
  let view = null;
  let guest = false;
  for (const [pattern, make, auth, kind] of ROUTES) {
    const params = match(pattern, loc.path);
    if (!params) continue;
    guest = kind === 'guest';
    if (auth && !user) view = <Redirect to={'/signin?next=' + encodeURIComponent(loc.path + loc.search)} />;
    else if (guest && user) view = <Redirect to="/" />;
    else view = make(params);
    break;
  }
  if (!view) view = <NotFound />;
  const bare = guest || (!user && loc.path === '/');
  return (
    <div class={'app' + (bare ? ' bare' : '') + (user ? ' signed-in' : '')}>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      {!bare && <Nav path={loc.path} />}
      <main id="main" tabIndex={-1} key={loc.path}>
        <OfflineBanner />
        {view}
      </main>
      <Toast />
    </div>
  );
}

render(<App />, document.getElementById('app'));
if (getSession()) {
  startLive();
  refreshCounts();
}
