// One post: carousel, caption, likes, comments (oldest first, paged), a
// comment box, and for the author editing the caption and deleting.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, newKey, seg } from '../api.js';
import { Carousel, PostActions, PostHeader } from '../post.jsx';
import { Link, navigate, postPath, profilePath } from '../router.jsx';
import { me, showToast, useStore } from '../store.js';
import { Avatar, Dialog, ErrorState, FieldError, ListFooter, Page, RichText, Spinner, Time, count, forgetPages, usePaged } from '../ui.jsx';
import { UserList } from '../users.jsx';

export function usePost(id) {
  const [post, setPost] = useState(null);
  const [error, setError] = useState(null);
  const load = useCallback(async () => {
    setError(null);
    try {
      setPost(await api.get(`/posts/${seg(id)}`));
    } catch (e) {
      setError(e);
    }
  }, [id]);
  useEffect(() => {
    setPost(null);
    load();
  }, [load]);
  return { post, setPost, error, load };
}

function Comment({ c, canDelete, onDelete }) {
  const a = c.author || {};
  return (
    <li class="comment">
      <Avatar user={a} size={32} />
      <div class="comment-body">
        <p>
          <Link href={profilePath(a.username)} class="username">
            {a.username}
          </Link>{' '}
          <RichText text={c.text} />
        </p>
        <p class="muted small">
          <Time iso={c.created_at} />
          {canDelete && (
            <>
              {' · '}
              <button type="button" class="btn-link small" onClick={() => onDelete(c)}>
                Delete
              </button>
            </>
          )}
        </p>
      </div>
    </li>
  );
}

function CommentBox({ post, onAdded }) {
  const user = useStore(me);
  const [text, setText] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const key = useRef(newKey());
  const input = useRef(null);
  useEffect(() => {
    if (location.hash === '#comment' && input.current) input.current.focus();
  }, []);
  if (!user)
    return (
      <p class="comment-box muted">
        <Link href={'/signin?next=' + encodeURIComponent(postPath(post.id))}>Sign in</Link> to like or comment.
      </p>
    );
  const submit = async (e) => {
    e.preventDefault();
    const t = text.trim();
    if (!t) return;
    setBusy(true);
    setError(null);
    try {
      const c = await api.post(`/posts/${seg(post.id)}/comments`, { text: t }, { 'Idempotency-Key': key.current });
      key.current = newKey();
      setText('');
      onAdded(c);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="comment-box" onSubmit={submit}>
      <label for="comment-input" class="sr-only">
        Add a comment
      </label>
      <input
        id="comment-input"
        ref={input}
        value={text}
        maxLength={1000}
        placeholder="Add a comment…"
        autocomplete="off"
        onInput={(e) => setText(e.currentTarget.value)}
        aria-invalid={error ? 'true' : undefined}
        aria-describedby="comment-error"
      />
      <button class="btn-link strong" type="submit" disabled={busy || !text.trim()}>
        Post
      </button>
      <FieldError id="comment-error" text={error && ((error.fields && error.fields.text) || error.message)} />
    </form>
  );
}

function EditCaption({ post, onDone, onClose }) {
  const [caption, setCaption] = useState(post.caption || '');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    try {
      onDone(await api.patch(`/posts/${seg(post.id)}`, { caption }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title="Edit caption" onClose={onClose}>
      <form class="form" onSubmit={submit}>
        <label for="edit-caption">Caption</label>
        <textarea id="edit-caption" rows={5} value={caption} maxLength={2200} onInput={(e) => setCaption(e.currentTarget.value)} />
        <p class="hint">{[...caption].length} / 2,200</p>
        <FieldError id="edit-caption-error" text={error && ((error.fields && error.fields.caption) || error.message)} />
        <button class="btn primary" disabled={busy}>
          Save
        </button>
      </form>
    </Dialog>
  );
}

export function PostPage({ id }) {
  const user = useStore(me);
  const { post, setPost, error, load } = usePost(id);
  const [editing, setEditing] = useState(false);
  const fetchComments = useCallback((cursor) => api.get(`/posts/${seg(id)}/comments`, { cursor, limit: 50 }), [id]);
  const comments = usePaged(post ? 'comments:' + id : null, fetchComments);

  if (error) return <Page title="Post"><ErrorState error={error} onRetry={load} /></Page>;
  if (!post) return <Page title="Post"><Spinner /></Page>;

  const mine = user && post.author && user.id === post.author.id;
  const remove = async () => {
    if (!confirm('Delete this post? This cannot be undone.')) return;
    try {
      await api.del(`/posts/${seg(post.id)}`);
      forgetPages('feed');
      forgetPages('posts:');
      showToast('Post deleted');
      navigate(profilePath(post.author.username), { replace: true });
    } catch (e) {
      showToast(e.message, 'error');
    }
  };
  const deleteComment = async (c) => {
    try {
      await api.del(`/comments/${seg(c.id)}`);
      comments.update((items) => items.filter((x) => x.id !== c.id));
      setPost({ ...post, comment_count: Math.max(0, post.comment_count - 1) });
    } catch (e) {
      showToast(e.message, 'error');
    }
  };

  return (
    <Page title={`${post.author.username}${post.caption ? ': ' + post.caption.slice(0, 40) : ''}`}>
      <article class="post-full" aria-label={`Post by ${post.author.username}`}>
        <div class="post-full-media">
          <Carousel post={post} eager sizes="(max-width: 900px) 100vw, 600px" />
        </div>
        <div class="post-full-side">
          <PostHeader post={post}>
            {mine && (
              <>
                <button type="button" class="btn-link small" onClick={() => setEditing(true)}>
                  Edit
                </button>
                <button type="button" class="btn-link small danger" onClick={remove}>
                  Delete
                </button>
              </>
            )}
          </PostHeader>
          <div class="post-full-comments">
            {post.caption && (
              <div class="comment caption-comment">
                <Avatar user={post.author} size={32} />
                <div class="comment-body">
                  <p>
                    <Link href={profilePath(post.author.username)} class="username">
                      {post.author.username}
                    </Link>{' '}
                    <RichText text={post.caption} />
                  </p>
                </div>
              </div>
            )}
            <ul class="comments" aria-label="Comments">
              {comments.items.map((c) => (
                <Comment key={c.id} c={c} canDelete={user && (user.id === (c.author && c.author.id) || mine)} onDelete={deleteComment} />
              ))}
            </ul>
            {comments.started && !comments.items.length && <p class="muted small">No comments yet.</p>}
            <ListFooter list={comments} />
          </div>
          <PostActions post={post} onChange={setPost} onComment={() => document.getElementById('comment-input')?.focus()} />
          <div class="post-body">
            {post.like_count > 0 ? (
              <Link href={postPath(post.id) + '/likes'} class="likes">
                {count(post.like_count, 'like')}
              </Link>
            ) : (
              <p class="small">Be the first to like this.</p>
            )}
            <p class="muted small">
              <Time iso={post.created_at} />
            </p>
          </div>
          <CommentBox
            post={post}
            onAdded={(c) => {
              comments.update((items) => (items.some((x) => x.id === c.id) ? items : items.concat(c)));
              setPost({ ...post, comment_count: (post.comment_count || 0) + 1 });
            }}
          />
        </div>
      </article>
      {editing && (
        <EditCaption
          post={post}
          onClose={() => setEditing(false)}
          onDone={(p) => {
            setPost(p);
            setEditing(false);
          }}
        />
      )}
    </Page>
  );
}

export function LikesPage({ id }) {
  const fetchPage = useCallback((cursor) => api.get(`/posts/${seg(id)}/likes`, { cursor }), [id]);
  const list = usePaged('likes:' + id, fetchPage);
  return (
    <Page title="Likes" narrow>
      <h1 class="page-title">Likes</h1>
      <UserList list={list} empty="No likes yet." />
    </Page>
  );
}
