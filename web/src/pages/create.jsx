// New post: pick 1–10 photos, preview them, write alt text for each, a
// caption with #hashtags and @mentions (suggested as you type), then upload
// with a progress bar. Files the server will refuse (too large, not an
// image) are flagged on their preview before anything is sent; an error
// from the server is shown next to the photos or the caption.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, newKey, upload } from '../api.js';
import { Icon } from '../icons.jsx';
import { navigate, postPath } from '../router.jsx';
import { showToast } from '../store.js';
import { Avatar, FieldError, Page, forgetPages } from '../ui.jsx';

const MAX_FILES = 10;
const MAX_BYTES = 10 * 1024 * 1024;
const TYPES = ['image/jpeg', 'image/png', 'image/webp'];

function problemOf(file) {
  if (file.type && !TYPES.includes(file.type)) return "Not a photo we can read: use JPEG, PNG or WebP.";
  if (file.size > MAX_BYTES) return `Too large (${(file.size / 1048576).toFixed(1)} MB): the limit is 10 MB.`;
  return null;
}

// The @word or #word being typed at the caret, if any.
function wordAtCaret(text, caret) {
  const before = text.slice(0, caret);
  const m = /(^|\s)([@#])([\p{L}\p{N}_.]*)$/u.exec(before);
  return m ? { sigil: m[2], word: m[3], start: caret - m[3].length - 1 } : null;
}

function CaptionInput({ value, onChange, error }) {
  const ref = useRef(null);
  const [at, setAt] = useState(null);
  const [suggest, setSuggest] = useState([]);

  useEffect(() => {
    if (!at || !at.word) {
      setSuggest([]);
      return undefined;
    }
    const t = setTimeout(async () => {
      try {
        if (at.sigil === '@') {
          const r = await api.get('/search/users', { q: at.word, limit: 5 });
          setSuggest((r.items || []).map((u) => ({ key: u.id, text: u.username, user: u })));
        } else {
          const r = await api.get('/search/hashtags', { q: at.word, limit: 5 });
          setSuggest((r.items || []).map((h) => ({ key: h.tag, text: h.tag, posts: h.post_count })));
        }
      } catch {
        setSuggest([]);
      }
    }, 200);
    return () => clearTimeout(t);
  }, [at && at.sigil, at && at.word]);

  const onInput = (e) => {
    onChange(e.currentTarget.value);
    setAt(wordAtCaret(e.currentTarget.value, e.currentTarget.selectionStart));
  };
  const pick = (s) => {
    const end = at.start + 1 + at.word.length;
    const next = value.slice(0, at.start) + at.sigil + s.text + ' ' + value.slice(end);
    onChange(next);
    setAt(null);
    setSuggest([]);
    requestAnimationFrame(() => {
      const el = ref.current;
      if (el) {
        el.focus();
        const pos = at.start + s.text.length + 2;
        el.setSelectionRange(pos, pos);
      }
    });
  };
  const length = [...value].length;
  return (
    <div class="field caption-field">
      <label for="caption">Caption</label>
      <textarea
        id="caption"
        ref={ref}
        rows={4}
        value={value}
        onInput={onInput}
        onKeyDown={(e) => e.key === 'Escape' && setSuggest([])}
        placeholder="Write a caption… use #hashtags and @mentions"
        aria-invalid={error ? 'true' : undefined}
        aria-describedby="caption-count caption-error"
      />
      {suggest.length > 0 && (
        <ul class="suggest" role="listbox" aria-label="Suggestions">
          {suggest.map((s) => (
            <li key={s.key}>
              <button type="button" class="suggest-item" onClick={() => pick(s)}>
                {s.user ? <Avatar user={s.user} size={24} /> : <span class="tag-sigil">#</span>}
                {s.text}
                {s.posts !== undefined && <span class="muted"> {s.posts} posts</span>}
              </button>
            </li>
          ))}
        </ul>
      )}
      <p id="caption-count" class={'hint' + (length > 2200 ? ' over' : '')}>
        {length.toLocaleString()} / 2,200
      </p>
      <FieldError id="caption-error" text={error} />
    </div>
  );
}

export function Create() {
  const [items, setItems] = useState([]); // {file, url, alt, problem}
  const [caption, setCaption] = useState('');
  const [progress, setProgress] = useState(null);
  const [error, setError] = useState(null);
  const [photosError, setPhotosError] = useState(null);
  const key = useRef(newKey());
  const picker = useRef(null);

  useEffect(() => () => items.forEach((i) => URL.revokeObjectURL(i.url)), []);

  const add = (files) => {
    setPhotosError(null);
    const list = [...files];
    const room = MAX_FILES - items.length;
    if (list.length > room) setPhotosError(`A post can have up to ${MAX_FILES} photos; ${list.length - Math.max(room, 0)} not added.`);
    const next = list.slice(0, Math.max(room, 0)).map((file) => ({ file, url: URL.createObjectURL(file), alt: '', problem: problemOf(file) }));
    setItems(items.concat(next));
    key.current = newKey();
  };
  const removeAt = (i) => {
    URL.revokeObjectURL(items[i].url);
    setItems(items.filter((_, j) => j !== i));
    setPhotosError(null);
    key.current = newKey();
  };
  const move = (i, d) => {
    const j = i + d;
    if (j < 0 || j >= items.length) return;
    const next = items.slice();
    [next[i], next[j]] = [next[j], next[i]];
    setItems(next);
  };
  const setAlt = (i, alt) => setItems(items.map((it, j) => (j === i ? { ...it, alt } : it)));
  // A file the browser cannot decode will not decode on the server either.
  const unreadable = (url) =>
    setItems((list) => list.map((it) => (it.url === url && !it.problem ? { ...it, problem: "This file isn't a photo we can read: use JPEG, PNG or WebP." } : it)));

  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    setPhotosError(null);
    if (!items.length) {
      setPhotosError('Pick at least one photo.');
      return;
    }
    if (items.some((i) => i.problem)) {
      setPhotosError('Remove the photos marked below first.');
      return;
    }
    if ([...caption].length > 2200) {
      setError({ caption: 'Captions can be up to 2,200 characters.' });
      return;
    }
    const form = new FormData();
    for (const it of items) form.append('image', it.file, it.file.name || 'photo.jpg');
    if (caption.trim()) form.append('caption', caption.trim());
    if (items.some((i) => i.alt.trim())) for (const it of items) form.append('alt_text', it.alt.trim());
    setProgress(0);
    try {
      const post = await upload('POST', '/posts', form, {
        onProgress: (p) => setProgress(p),
        headers: { 'Idempotency-Key': key.current },
      });
      forgetPages('feed');
      forgetPages('posts:');
      showToast('Your post has been shared.');
      navigate(postPath(post.id), { replace: true });
    } catch (err) {
      setProgress(null);
      const fields = err.fields || {};
      if (err.status === 413 || err.status === 415 || fields.image) setPhotosError((fields.image ? fields.image + ' ' : '') + err.message);
      else if (fields.caption) setError({ caption: fields.caption });
      else if (fields.alt_text) setError({ alt: fields.alt_text });
      else setError({ general: err.message });
    }
  };

  const busy = progress !== null;
  return (
    <Page title="New post" narrow>
      <h1 class="page-title">New post</h1>
      <form class="form create" onSubmit={submit}>
        <fieldset class="photos" aria-describedby="photos-error">
          <legend>Photos ({items.length}/{MAX_FILES})</legend>
          <ul class="previews">
            {items.map((it, i) => (
              <li key={it.url} class={'preview' + (it.problem ? ' bad' : '')}>
                <div class="preview-img">
                  {it.problem ? (
                    <span class="preview-bad" aria-hidden="true">
                      <Icon name="image" size={36} />
                    </span>
                  ) : (
                    <img src={it.url} alt={it.alt || `Selected photo ${i + 1}`} onError={() => unreadable(it.url)} />
                  )}
                  <button type="button" class="icon-btn remove" aria-label={`Remove photo ${i + 1}`} onClick={() => removeAt(i)} disabled={busy}>
                    <Icon name="close" size={16} />
                  </button>
                </div>
                {it.problem ? (
                  <p class="field-error" role="alert">
                    {it.problem}
                  </p>
                ) : (
                  <>
                    <label for={'alt-' + i} class="small">
                      Alt text for photo {i + 1}
                    </label>
                    <input
                      id={'alt-' + i}
                      value={it.alt}
                      maxLength={300}
                      placeholder="Describe this photo for people who can't see it"
                      onInput={(e) => setAlt(i, e.currentTarget.value)}
                      disabled={busy}
                    />
                  </>
                )}
                {items.length > 1 && (
                  <div class="reorder">
                    <button type="button" class="btn-link small" onClick={() => move(i, -1)} disabled={busy || i === 0} aria-label={`Move photo ${i + 1} earlier`}>
                      ← Earlier
                    </button>
                    <button type="button" class="btn-link small" onClick={() => move(i, 1)} disabled={busy || i === items.length - 1} aria-label={`Move photo ${i + 1} later`}>
                      Later →
                    </button>
                  </div>
                )}
              </li>
            ))}
            {items.length < MAX_FILES && (
              <li class="preview add">
                <button type="button" class="add-photos" onClick={() => picker.current.click()} disabled={busy}>
                  <Icon name="image" size={36} />
                  <span>{items.length ? 'Add more' : 'Select photos'}</span>
                </button>
              </li>
            )}
          </ul>
          <input
            ref={picker}
            id="photo-input"
            class="sr-only"
            type="file"
            accept="image/jpeg,image/png,image/webp"
            multiple
            tabIndex={-1}
            aria-label="Choose photos"
            onChange={(e) => {
              add(e.currentTarget.files);
              e.currentTarget.value = '';
            }}
          />
          <FieldError id="photos-error" text={photosError} />
        </fieldset>
        <CaptionInput value={caption} onChange={setCaption} error={error && error.caption} />
        <FieldError id="alt-error" text={error && error.alt} />
        <FieldError id="create-error" text={error && error.general} />
        {busy && (
          <div class="progress" role="progressbar" aria-label="Upload progress" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(progress * 100)}>
            <div class="progress-bar" style={{ width: Math.round(progress * 100) + '%' }} />
            <span>{progress < 1 ? `Uploading… ${Math.round(progress * 100)}%` : 'Processing…'}</span>
          </div>
        )}
        <button class="btn primary block" type="submit" disabled={busy}>
          {busy ? 'Sharing…' : 'Share'}
        </button>
      </form>
    </Page>
  );
}
