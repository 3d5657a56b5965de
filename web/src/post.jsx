// Posts: the image box (fixed aspect, lazy, srcset of thumb and full size),
// the carousel, the post card with like / comment / share / save, the grid
// tile, and the share-to-direct dialog.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, seg } from './api.js';
import { Icon } from './icons.jsx';
import { Link, navigate, postPath, profilePath } from './router.jsx';
import { me, showToast, useStore } from './store.js';
import { Avatar, Dialog, FieldError, RichText, Time, count } from './ui.jsx';

// The thumbnail's width: the largest side is at most 320 px, never upscaled.
function thumbWidth(img) {
  const w = img.width || 1080;
  const h = img.height || w;
  const scale = Math.min(1, 320 / Math.max(w, h));
  return Math.max(1, Math.round(w * scale));
}

export function srcSet(img) {
  if (!img.thumb_url || img.thumb_url === img.url) return undefined;
  const tw = thumbWidth(img);
  const w = img.width || 1080;
  return tw < w ? `${img.thumb_url} ${tw}w, ${img.url} ${w}w` : undefined;
}

export function altOf(img, post, i) {
  if (img.alt_text) return img.alt_text;
  const who = post && post.author ? post.author.username : 'someone';
  const n = post && post.images && post.images.length > 1 ? ` (${i + 1} of ${post.images.length})` : '';
  return `Photo by ${who}${n}`;
}

// One image in a box whose shape is known before the bytes arrive.
function Photo({ img, post, i, eager, sizes }) {
  const [loaded, setLoaded] = useState(false);
  return (
    <img
      class={'photo' + (loaded ? ' loaded' : '')}
      src={img.url}
      srcset={srcSet(img)}
      sizes={sizes || '(max-width: 640px) 100vw, 470px'}
      width={img.width || undefined}
      height={img.height || undefined}
      alt={altOf(img, post, i)}
      loading={eager ? 'eager' : 'lazy'}
      decoding="async"
      onLoad={() => setLoaded(true)}
    />
  );
}

// Swipe (scroll-snap) on touch, arrow buttons and arrow keys elsewhere.
export function Carousel({ post, eager, sizes }) {
  const images = post.images || [];
  const strip = useRef(null);
  const [index, setIndex] = useState(0);
  const first = images[0] || { width: 1, height: 1 };
  // The box takes the first photo's shape, kept between 4:5 and 1.91:1.
  const ratio = Math.min(1.91, Math.max(0.8, (first.width || 1) / (first.height || 1)));

  const go = (i) => {
    const el = strip.current;
    if (!el) return;
    const next = Math.max(0, Math.min(images.length - 1, i));
    el.scrollTo({ left: next * el.clientWidth, behavior: 'smooth' });
    setIndex(next);
  };
  // Swipes update the index once the strip settles, so a smooth scroll
  // started by a button does not flip the counter back on its way.
  const settle = useRef(0);
  const onScroll = () => {
    clearTimeout(settle.current);
    settle.current = setTimeout(() => {
      const el = strip.current;
      if (el && el.clientWidth) setIndex(Math.round(el.scrollLeft / el.clientWidth));
    }, 120);
  };
  useEffect(() => () => clearTimeout(settle.current), []);
  const onKey = (e) => {
    if (e.key === 'ArrowRight') {
      e.preventDefault();
      go(index + 1);
    } else if (e.key === 'ArrowLeft') {
      e.preventDefault();
      go(index - 1);
    }
  };

  return (
    <div
      class="carousel"
      style={{ aspectRatio: String(ratio) }}
      role={images.length > 1 ? 'region' : undefined}
      aria-roledescription={images.length > 1 ? 'carousel' : undefined}
      aria-label={images.length > 1 ? `${images.length} photos` : undefined}
      tabIndex={images.length > 1 ? 0 : undefined}
      onKeyDown={images.length > 1 ? onKey : undefined}
    >
      <div class="carousel-strip" ref={strip} onScroll={onScroll}>
        {images.map((img, i) => (
          <div class="slide" key={img.url} aria-hidden={images.length > 1 && i !== index ? 'true' : undefined}>
            <Photo img={img} post={post} i={i} eager={eager && i === 0} sizes={sizes} />
          </div>
        ))}
      </div>
      {images.length > 1 && (
        <>
          {index > 0 && (
            <button type="button" class="carousel-btn prev" aria-label="Previous photo" onClick={() => go(index - 1)}>
              <Icon name="left" size={18} />
            </button>
          )}
          {index < images.length - 1 && (
            <button type="button" class="carousel-btn next" aria-label="Next photo" onClick={() => go(index + 1)}>
              <Icon name="right" size={18} />
            </button>
          )}
          <div class="dots" aria-hidden="true">
            {images.map((img, i) => (
              <span key={img.url} class={i === index ? 'dot on' : 'dot'} />
            ))}
          </div>
          <span class="carousel-count" aria-live="polite">
            {index + 1}/{images.length}
          </span>
        </>
      )}
    </div>
  );
}

// Like / save with the answer of the server, shown at once (optimistic) and
// put back if the request fails.
export function usePostActions(post, onChange) {
  const toggleLike = async () => {
    const liked = !post.liked_by_me;
    const before = post;
    onChange({ ...post, liked_by_me: liked, like_count: Math.max(0, (post.like_count || 0) + (liked ? 1 : -1)) });
    try {
      const r = liked ? await api.post(`/posts/${seg(post.id)}/like`) : await api.del(`/posts/${seg(post.id)}/like`);
      if (r) onChange({ ...before, liked_by_me: r.liked, like_count: r.like_count });
    } catch (e) {
      onChange(before);
      showToast(e.message, 'error');
    }
  };
  const toggleSave = async () => {
    const saved = !post.saved_by_me;
    const before = post;
    onChange({ ...post, saved_by_me: saved });
    try {
      const r = saved ? await api.post(`/posts/${seg(post.id)}/save`) : await api.del(`/posts/${seg(post.id)}/save`);
      if (r && typeof r.saved === 'boolean') onChange({ ...before, saved_by_me: r.saved });
      showToast(saved ? 'Saved' : 'Removed from saved');
    } catch (e) {
      onChange(before);
      showToast(e.message, 'error');
    }
  };
  return { toggleLike, toggleSave };
}

export function PostActions({ post, onChange, onComment }) {
  const user = useStore(me);
  const [sharing, setSharing] = useState(false);
  const { toggleLike, toggleSave } = usePostActions(post, onChange);
  const needUser = (fn) => () => (user ? fn() : navigate('/signin'));
  return (
    <div class="post-actions">
      <button
        type="button"
        class={'icon-btn' + (post.liked_by_me ? ' liked' : '')}
        aria-pressed={post.liked_by_me ? 'true' : 'false'}
        aria-label={post.liked_by_me ? 'Unlike' : 'Like'}
        onClick={needUser(toggleLike)}
      >
        <Icon name="heart" filled={post.liked_by_me} />
      </button>
      <button type="button" class="icon-btn" aria-label="Comment" onClick={onComment}>
        <Icon name="comment" />
      </button>
      <button type="button" class="icon-btn" aria-label="Share" onClick={needUser(() => setSharing(true))}>
        <Icon name="send" />
      </button>
      <span class="spacer" />
      <button
        type="button"
        class="icon-btn"
        aria-pressed={post.saved_by_me ? 'true' : 'false'}
        aria-label={post.saved_by_me ? 'Remove from saved' : 'Save'}
        onClick={needUser(toggleSave)}
      >
        <Icon name="bookmark" filled={post.saved_by_me} />
      </button>
      {sharing && <ShareDialog post={post} onClose={() => setSharing(false)} />}
    </div>
  );
}

export function PostHeader({ post, children }) {
  const a = post.author || {};
  return (
    <header class="post-head">
      <Link href={profilePath(a.username)} class="post-author">
        <Avatar user={a} size={32} />
        <span class="username">{a.username}</span>
      </Link>
      <span class="muted">
        · <Time iso={post.created_at} />
      </span>
      <span class="spacer" />
      {children}
    </header>
  );
}

// A post in the feed.
export function PostCard({ post, onChange, eager }) {
  const open = () => navigate(postPath(post.id));
  const likes = post.like_count || 0;
  return (
    <article class="post-card" aria-label={`Post by ${post.author ? post.author.username : ''}`}>
      <PostHeader post={post} />
      <Carousel post={post} eager={eager} />
      <PostActions post={post} onChange={onChange} onComment={() => navigate(postPath(post.id) + '#comment')} />
      <div class="post-body">
        {likes > 0 && (
          <Link href={postPath(post.id) + '/likes'} class="likes">
            {count(likes, 'like')}
          </Link>
        )}
        {post.caption && (
          <p class="caption">
            <Link href={profilePath(post.author.username)} class="username">
              {post.author.username}
            </Link>{' '}
            <RichText text={post.caption} />
          </p>
        )}
        {post.comment_count > 0 && (
          <Link href={postPath(post.id)} class="muted view-comments" onClick={(e) => e.button === 0 && (e.preventDefault(), open())}>
            View {post.comment_count === 1 ? '1 comment' : `all ${post.comment_count} comments`}
          </Link>
        )}
      </div>
    </article>
  );
}

// A square tile in a profile, tag or explore grid.
export function GridTile({ post }) {
  const img = (post.images || [])[0];
  return (
    <Link href={postPath(post.id)} class="tile" aria-label={`Open post by ${post.author ? post.author.username : ''}${post.caption ? ': ' + post.caption.slice(0, 80) : ''}`}>
      {img && (
        <img
          src={img.thumb_url || img.url}
          srcset={srcSet(img)}
          sizes="(max-width: 640px) 33vw, 300px"
          alt={altOf(img, post, 0)}
          loading="lazy"
          decoding="async"
          width={thumbWidth(img)}
          height={Math.round(thumbWidth(img) * ((img.height || 1) / (img.width || 1)))}
        />
      )}
      {post.images && post.images.length > 1 && (
        <span class="tile-multi" aria-hidden="true">
          <Icon name="grid" size={16} />
        </span>
      )}
      <span class="tile-stats" aria-hidden="true">
        <Icon name="heart" filled size={18} /> {post.like_count || 0}
        <Icon name="comment" filled size={18} /> {post.comment_count || 0}
      </span>
    </Link>
  );
}

export function Grid({ posts }) {
  return (
    <div class="grid">
      {posts.map((p) => (
        <GridTile key={p.id} post={p} />
      ))}
    </div>
  );
}

// Send a post to one or more people as a direct message.
export function ShareDialog({ post, onClose }) {
  const [to, setTo] = useState('');
  const [text, setText] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [suggest, setSuggest] = useState([]);
  const input = useRef(null);
  useEffect(() => input.current && input.current.focus(), []);

  const names = to
    .split(/[\s,]+/)
    .map((s) => s.replace(/^@/, '').toLowerCase())
    .filter(Boolean);
  const lastWord = to.split(/[\s,]+/).pop().replace(/^@/, '');

  useEffect(() => {
    if (!lastWord) {
      setSuggest([]);
      return undefined;
    }
    const t = setTimeout(async () => {
      try {
        const r = await api.get('/search/users', { q: lastWord, limit: 5 });
        setSuggest(r.items || []);
      } catch {
        setSuggest([]);
      }
    }, 200);
    return () => clearTimeout(t);
  }, [lastWord]);

  const submit = async (e) => {
    e.preventDefault();
    if (!names.length) {
      setError({ message: 'Add at least one username.' });
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api.post(`/posts/${seg(post.id)}/share`, text.trim() ? { to: names, text: text.trim() } : { to: names });
      showToast(names.length === 1 ? `Sent to ${names[0]}` : `Sent to ${names.length} people`);
      onClose();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const pick = (u) => {
    const parts = to.split(/([\s,]+)/);
    parts[parts.length - 1] = u.username;
    setTo(parts.join('') + ', ');
    setSuggest([]);
    input.current && input.current.focus();
  };

  return (
    <Dialog title="Share" onClose={onClose}>
      <form onSubmit={submit} class="form">
        <label for="share-to">To</label>
        <input
          id="share-to"
          ref={input}
          value={to}
          onInput={(e) => setTo(e.currentTarget.value)}
          placeholder="username, another"
          autocomplete="off"
          aria-invalid={error && error.fields ? 'true' : undefined}
          aria-describedby="share-error"
        />
        {suggest.length > 0 && (
          <ul class="suggest" role="listbox" aria-label="Suggestions">
            {suggest.map((u) => (
              <li key={u.id}>
                <button type="button" class="suggest-item" onClick={() => pick(u)}>
                  <Avatar user={u} size={24} /> {u.username}
                  {u.display_name && <span class="muted"> {u.display_name}</span>}
                </button>
              </li>
            ))}
          </ul>
        )}
        <label for="share-text">Message (optional)</label>
        <input id="share-text" value={text} maxLength={4000} onInput={(e) => setText(e.currentTarget.value)} />
        <FieldError id="share-error" text={error && (error.fields ? Object.values(error.fields).join(' ') : error.message)} />
        <button class="btn primary" disabled={busy} type="submit">
          {busy ? 'Sending…' : 'Send'}
        </button>
      </form>
    </Dialog>
  );
}

export { count };
