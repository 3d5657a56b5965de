// Direct messages: the conversation list (most recent first, unread
// badges), starting a conversation, and a thread (newest at the bottom,
// older pages on demand, live messages over the WebSocket, read receipts).
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, newKey, seg } from '../api.js';
import { Icon } from '../icons.jsx';
import { isLive, onLive, refreshCounts } from '../live.js';
import { altOf } from '../post.jsx';
import { Link, navigate, postPath, profilePath } from '../router.jsx';
import { me, unread, useStore } from '../store.js';
import { Avatar, Empty, ErrorState, FieldError, ListFooter, Page, Spinner, Time, usePaged, forgetPages } from '../ui.jsx';

function others(conv, user) {
  const list = (conv.participants || []).filter((p) => !user || p.id !== user.id);
  return list.length ? list : conv.participants || [];
}

function convTitle(conv, user) {
  return others(conv, user)
    .map((p) => p.username)
    .join(', ');
}

function preview(m, user) {
  if (!m) return 'Say hi!';
  const who = user && m.sender && m.sender.id === user.id ? 'You: ' : '';
  if (m.post) return who + 'Shared a post';
  return who + (m.text || '');
}

function NewConversation({ onClose }) {
  const [to, setTo] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const names = to
      .split(/[\s,]+/)
      .map((s) => s.replace(/^@/, '').toLowerCase())
      .filter(Boolean);
    if (!names.length) {
      setError('Enter at least one username.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const c = await api.post('/conversations', { participants: names });
      forgetPages('conversations');
      navigate('/direct/' + c.id);
    } catch (err) {
      setError(err.status === 404 ? "We couldn't find one of those accounts. Check the usernames." : (err.fields && Object.values(err.fields).join(' ')) || err.message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="form new-conv" onSubmit={submit}>
      <label for="new-conv-to">To</label>
      <div class="row">
        <input id="new-conv-to" value={to} onInput={(e) => setTo(e.currentTarget.value)} placeholder="username, or several separated by commas" autocomplete="off" aria-describedby="new-conv-error" />
        <button class="btn primary" type="submit" disabled={busy}>
          Chat
        </button>
        {onClose && (
          <button class="btn" type="button" onClick={onClose}>
            Cancel
          </button>
        )}
      </div>
      <FieldError id="new-conv-error" text={error} />
    </form>
  );
}

export function Inbox() {
  const user = useStore(me);
  const fetchPage = useCallback((cursor) => api.get('/conversations', { cursor }), []);
  const list = usePaged('conversations', fetchPage);
  const [composing, setComposing] = useState(false);

  // A live message moves its conversation to the top, or brings a new one in.
  useEffect(
    () =>
      onLive('message', (m) => {
        let known = false;
        list.update((items) => {
          const i = items.findIndex((c) => c.id === m.conversation_id);
          if (i < 0) return items;
          known = true;
          const mine = user && m.sender && m.sender.id === user.id;
          const c = { ...items[i], last_message: m, updated_at: m.created_at, unread_count: (items[i].unread_count || 0) + (mine ? 0 : 1) };
          return [c, ...items.slice(0, i), ...items.slice(i + 1)];
        });
        if (!known) list.reload();
        return false;
      }),
    [list.update, list.reload, user],
  );

  return (
    <Page title="Messages" narrow>
      <div class="page-title-row">
        <h1 class="page-title">Messages</h1>
        <button type="button" class="btn" onClick={() => setComposing(!composing)} aria-expanded={composing ? 'true' : 'false'}>
          New message
        </button>
      </div>
      {composing && <NewConversation onClose={() => setComposing(false)} />}
      {!list.started && list.error && <ErrorState error={list.error} onRetry={list.loadMore} />}
      {list.started && !list.items.length && (
        <Empty icon="send" title="Your messages">
          <p class="muted">Send private photos and messages to a friend.</p>
        </Empty>
      )}
      <ul class="conv-list">
        {list.items.map((c) => {
          const who = others(c, user);
          const n = c.unread_count || 0;
          return (
            <li key={c.id}>
              <Link href={'/direct/' + c.id} class={'conv' + (n ? ' unread' : '')}>
                <Avatar user={who[0]} size={52} />
                <span class="conv-text">
                  <span class="username">{convTitle(c, user)}</span>
                  <span class="conv-last">
                    {preview(c.last_message, user)}
                    {c.last_message && (
                      <span class="muted">
                        {' · '}
                        <Time iso={c.last_message.created_at} />
                      </span>
                    )}
                  </span>
                </span>
                {n > 0 && (
                  <span class="badge" aria-label={`${n} unread`}>
                    {n > 99 ? '99+' : n}
                  </span>
                )}
              </Link>
            </li>
          );
        })}
      </ul>
      {list.started && <ListFooter list={list} />}
    </Page>
  );
}

function SharedPost({ post }) {
  if (!post) return <p class="muted small">This post is no longer available.</p>;
  const img = (post.images || [])[0];
  return (
    <Link href={postPath(post.id)} class="shared-post">
      <span class="shared-head">
        <Avatar user={post.author} size={20} /> {post.author && post.author.username}
      </span>
      {img && (
        <span class="shared-img" style={{ aspectRatio: `${img.width || 1}/${img.height || 1}` }}>
          <img src={img.thumb_url || img.url} alt={altOf(img, post, 0)} loading="lazy" decoding="async" />
        </span>
      )}
      {post.caption && <span class="shared-caption">{post.caption.slice(0, 100)}</span>}
    </Link>
  );
}

export function Thread({ id }) {
  const user = useStore(me);
  const [conv, setConv] = useState(null);
  const [convError, setConvError] = useState(null);
  const fetchPage = useCallback((cursor) => api.get(`/conversations/${seg(id)}/messages`, { cursor, limit: 30 }), [id]);
  const list = usePaged('messages:' + id, fetchPage);
  const [text, setText] = useState('');
  const [sendError, setSendError] = useState(null);
  const [sending, setSending] = useState(false);
  const key = useRef(newKey());
  const bottom = useRef(null);
  const lastRead = useRef(null);
  const scroller = useRef(null);

  const loadConv = useCallback(async () => {
    setConvError(null);
    try {
      setConv(await api.get(`/conversations/${seg(id)}`));
    } catch (e) {
      setConvError(e);
    }
  }, [id]);
  useEffect(() => {
    loadConv();
  }, [loadConv]);

  // Newest first from the API; shown oldest at the top.
  const messages = list.items.slice().reverse();
  const newest = list.items[0];

  // Read receipt for the newest message from someone else.
  useEffect(() => {
    if (!newest || !user || lastRead.current === newest.id) return;
    lastRead.current = newest.id;
    api
      .post(`/conversations/${seg(id)}/read`, { message_id: newest.id })
      .then(() => {
        forgetPages('conversations');
        if (!isLive()) refreshCounts();
      })
      .catch(() => {});
    if (conv && conv.unread_count) {
      unread.set((u) => ({ ...u, messages: Math.max(0, u.messages - conv.unread_count) }));
      setConv({ ...conv, unread_count: 0 });
    }
  }, [newest && newest.id, conv && conv.unread_count]);

  // Keep the newest message in view when one arrives.
  useEffect(() => {
    if (bottom.current) bottom.current.scrollIntoView({ block: 'end' });
  }, [newest && newest.id]);

  useEffect(
    () =>
      onLive('message', (m) => {
        if (m.conversation_id !== id) return false;
        list.update((items) => (items.some((x) => x.id === m.id) ? items : [m, ...items]));
        return true;
      }),
    [id, list.update],
  );

  const send = async (e) => {
    e.preventDefault();
    const t = text.trim();
    if (!t) return;
    setSending(true);
    setSendError(null);
    try {
      const m = await api.post(`/conversations/${seg(id)}/messages`, { text: t }, { 'Idempotency-Key': key.current });
      key.current = newKey();
      setText('');
      list.update((items) => (items.some((x) => x.id === m.id) ? items : [m, ...items]));
      forgetPages('conversations');
    } catch (err) {
      setSendError((err.fields && err.fields.text) || err.message);
    } finally {
      setSending(false);
    }
  };

  if (convError) return <Page title="Messages"><ErrorState error={convError} onRetry={loadConv} /></Page>;
  const title = conv ? convTitle(conv, user) : '';
  const who = conv ? others(conv, user) : [];
  return (
    <Page title={title || 'Messages'}>
      <div class="thread">
        <header class="thread-head">
          <Link href="/direct" class="icon-btn back" aria-label="Back to messages">
            <Icon name="left" />
          </Link>
          {conv && (
            <Link href={who.length === 1 ? profilePath(who[0].username) : '/direct/' + id} class="thread-title">
              <Avatar user={who[0]} size={32} />
              <h1 class="username">{title}</h1>
            </Link>
          )}
        </header>
        <div class="thread-messages" ref={scroller} aria-live="polite" aria-label="Messages">
          {!list.done && list.started && (
            <div class="load-more">
              <button type="button" class="btn-link" onClick={list.loadMore} disabled={list.loading}>
                {list.loading ? 'Loading…' : 'Load older messages'}
              </button>
            </div>
          )}
          {!list.started && (list.error ? <ErrorState error={list.error} onRetry={list.loadMore} /> : <Spinner />)}
          {list.started && list.error && <ErrorState error={list.error} onRetry={list.loadMore} compact />}
          <ol class="messages">
            {messages.map((m) => {
              const mine = user && m.sender && m.sender.id === user.id;
              return (
                <li key={m.id} class={'msg' + (mine ? ' mine' : '')}>
                  {!mine && <Avatar user={m.sender} size={24} />}
                  <div class="bubble-wrap">
                    {m.post !== undefined && m.post !== null && <SharedPost post={m.post} />}
                    {m.text && <p class="bubble">{m.text}</p>}
                    <Time iso={m.created_at} />
                  </div>
                </li>
              );
            })}
          </ol>
          {list.started && !list.items.length && <p class="muted center">No messages yet. Say hi!</p>}
          <div ref={bottom} />
        </div>
        <form class="composer" onSubmit={send}>
          <label for="message-input" class="sr-only">
            Message
          </label>
          <input
            id="message-input"
            value={text}
            maxLength={4000}
            placeholder="Message…"
            autocomplete="off"
            onInput={(e) => setText(e.currentTarget.value)}
            aria-describedby="message-error"
          />
          <button type="submit" class="btn-link strong" disabled={sending || !text.trim()}>
            Send
          </button>
          <FieldError id="message-error" text={sendError} />
        </form>
      </div>
    </Page>
  );
}
