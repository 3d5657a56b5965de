// Edit profile (name, bio, website, email, private account), the avatar,
// the password, blocked accounts, sign out.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, seg, signOut, updateSessionUser, upload } from '../api.js';
import { navigate, profilePath } from '../router.jsx';
import { showToast } from '../store.js';
import { Avatar, ErrorState, FieldError, ListFooter, Page, Spinner, fieldSentence, forgetPages, usePaged } from '../ui.jsx';

function AvatarEditor({ user, onChange }) {
  const input = useRef(null);
  const [error, setError] = useState(null);
  const [progress, setProgress] = useState(null);
  const pick = async (file) => {
    if (!file) return;
    setError(null);
    if (file.size > 10 * 1024 * 1024) {
      setError(`That file is ${(file.size / 1048576).toFixed(1)} MB; photos can be up to 10 MB.`);
      return;
    }
    const form = new FormData();
    form.append('image', file, file.name || 'avatar.jpg');
    setProgress(0);
    try {
      onChange(await upload('PUT', '/me/avatar', form, { onProgress: setProgress }));
      showToast('Profile photo updated');
    } catch (e) {
      setError((e.fields && e.fields.image) || e.message);
    } finally {
      setProgress(null);
    }
  };
  const remove = async () => {
    try {
      onChange(await api.del('/me/avatar'));
    } catch (e) {
      setError(e.message);
    }
  };
  return (
    <div class="avatar-editor">
      <Avatar user={user} size={72} />
      <div>
        <p class="strong">{user.username}</p>
        <button type="button" class="btn-link strong" onClick={() => input.current.click()} disabled={progress !== null}>
          {progress !== null ? `Uploading… ${Math.round(progress * 100)}%` : 'Change profile photo'}
        </button>
        {user.avatar_url && (
          <button type="button" class="btn-link small danger" onClick={remove}>
            Remove
          </button>
        )}
        <input
          ref={input}
          type="file"
          class="sr-only"
          tabIndex={-1}
          aria-label="Choose a profile photo"
          accept="image/jpeg,image/png,image/webp"
          onChange={(e) => {
            pick(e.currentTarget.files[0]);
            e.currentTarget.value = '';
          }}
        />
        <FieldError id="avatar-error" text={error} />
      </div>
    </div>
  );
}

function ProfileForm({ user, onSaved }) {
  const [form, setForm] = useState({
    display_name: user.display_name || '',
    bio: user.bio || '',
    website: user.website || '',
    email: user.email || '',
    is_private: !!user.is_private,
  });
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (k) => (e) => setForm({ ...form, [k]: k === 'is_private' ? e.currentTarget.checked : e.currentTarget.value });
  const submit = async (e) => {
    e.preventDefault();
    if ([...form.bio].length > 150) {
      setErr({ fields: { bio: 'A bio can be up to 150 characters.' } });
      return;
    }
    setBusy(true);
    setErr(null);
    try {
      const changed = {};
      for (const k of Object.keys(form)) if (form[k] !== (k === 'is_private' ? !!user[k] : user[k] || '')) changed[k] = form[k];
      const u = await api.patch('/me', changed);
      onSaved(u);
      showToast('Profile saved');
    } catch (e2) {
      setErr(e2.status === 409 && !e2.fields ? { fields: { email: e2.message } } : e2);
    } finally {
      setBusy(false);
    }
  };
  const f = (err && err.fields) || {};
  const field = (k, label, props = {}) => (
    <div class="field">
      <label for={'pf-' + k}>{label}</label>
      <input id={'pf-' + k} value={form[k]} onInput={set(k)} aria-invalid={f[k] ? 'true' : undefined} aria-describedby={'pf-' + k + '-error'} {...props} />
      <FieldError id={'pf-' + k + '-error'} text={fieldSentence(label, f[k])} />
    </div>
  );
  return (
    <form class="form" onSubmit={submit}>
      {field('display_name', 'Name', { autocomplete: 'name', maxLength: 64 })}
      {field('website', 'Website', { type: 'url', inputMode: 'url', placeholder: 'https://' })}
      <div class="field">
        <label for="pf-bio">Bio</label>
        <textarea id="pf-bio" rows={3} value={form.bio} onInput={set('bio')} aria-invalid={f.bio ? 'true' : undefined} aria-describedby="pf-bio-count pf-bio-error" />
        <p id="pf-bio-count" class={'hint' + ([...form.bio].length > 150 ? ' over' : '')}>
          {[...form.bio].length} / 150
        </p>
        <FieldError id="pf-bio-error" text={fieldSentence('Bio', f.bio)} />
      </div>
      {field('email', 'Email', { type: 'email', autocomplete: 'email' })}
      <label class="check">
        <input type="checkbox" checked={form.is_private} onChange={set('is_private')} />
        <span>
          <strong>Private account</strong>
          <span class="muted small block">Only people you approve can see your photos and who you follow.</span>
        </span>
      </label>
      <FieldError id="pf-error" text={err && !err.fields ? err.message : null} />
      <button class="btn primary" type="submit" disabled={busy}>
        {busy ? 'Saving…' : 'Save'}
      </button>
    </form>
  );
}

function PasswordForm() {
  const [cur, setCur] = useState('');
  const [next, setNext] = useState('');
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    if ([...next].length < 8) {
      setErr({ fields: { new_password: 'Use at least 8 characters.' } });
      return;
    }
    setBusy(true);
    setErr(null);
    try {
      await api.put('/me/password', { current_password: cur, new_password: next });
      setCur('');
      setNext('');
      showToast('Password changed. Other sessions were signed out.');
    } catch (e2) {
      setErr(e2.code === 'invalid_credentials' ? { fields: { current_password: "That's not your current password." } } : e2);
    } finally {
      setBusy(false);
    }
  };
  const f = (err && err.fields) || {};
  return (
    <form class="form" onSubmit={submit}>
      <div class="field">
        <label for="pw-current">Current password</label>
        <input id="pw-current" type="password" autocomplete="current-password" value={cur} onInput={(e) => setCur(e.currentTarget.value)} aria-describedby="pw-current-error" />
        <FieldError id="pw-current-error" text={f.current_password} />
      </div>
      <div class="field">
        <label for="pw-new">New password</label>
        <input id="pw-new" type="password" autocomplete="new-password" value={next} onInput={(e) => setNext(e.currentTarget.value)} aria-describedby="pw-new-error" />
        <FieldError id="pw-new-error" text={f.new_password} />
      </div>
      <FieldError id="pw-error" text={err && !err.fields ? err.message : null} />
      <button class="btn" type="submit" disabled={busy || !cur || !next}>
        Change password
      </button>
    </form>
  );
}

function Blocked() {
  const fetchPage = useCallback((cursor) => api.get('/me/blocked', { cursor }), []);
  const list = usePaged('blocked', fetchPage);
  const unblock = async (u) => {
    try {
      await api.del(`/users/${seg(u.username)}/block`);
      list.update((items) => items.filter((x) => x.id !== u.id));
    } catch (e) {
      showToast(e.message, 'error');
    }
  };
  if (list.started && !list.items.length) return <p class="muted small">You haven't blocked anyone.</p>;
  return (
    <>
      <ul class="user-list">
        {list.items.map((u) => (
          <li class="user-row" key={u.id}>
            <span class="user-link">
              <Avatar user={u} size={32} />
              <span class="username">{u.username}</span>
            </span>
            <button type="button" class="btn small" onClick={() => unblock(u)}>
              Unblock
            </button>
          </li>
        ))}
      </ul>
      <ListFooter list={list} />
    </>
  );
}

export function Settings() {
  const [user, setUser] = useState(null);
  const [error, setError] = useState(null);
  const load = useCallback(async () => {
    setError(null);
    try {
      const u = await api.get('/me');
      setUser(u);
      updateSessionUser(u);
    } catch (e) {
      setError(e);
    }
  }, []);
  useEffect(() => {
    load();
  }, [load]);
  const changed = (u) => {
    const merged = { ...user, ...u };
    setUser(merged);
    updateSessionUser(merged);
    forgetPages('feed');
  };
  if (error) return <Page title="Edit profile"><ErrorState error={error} onRetry={load} /></Page>;
  if (!user) return <Page title="Edit profile"><Spinner /></Page>;
  return (
    <Page title="Edit profile" narrow>
      <h1 class="page-title">Edit profile</h1>
      <section class="card settings-section">
        <AvatarEditor user={user} onChange={changed} />
        <ProfileForm user={user} onSaved={changed} />
      </section>
      <section class="card settings-section">
        <h2 class="section-title">Password</h2>
        <PasswordForm />
      </section>
      <section class="card settings-section">
        <h2 class="section-title">Blocked accounts</h2>
        <Blocked />
      </section>
      <section class="card settings-section">
        <button
          type="button"
          class="btn block"
          onClick={async () => {
            await signOut();
            navigate('/signin', { replace: true });
          }}
        >
          Sign out
        </button>
        <p class="center small">
          <a href={profilePath(user.username)} onClick={(e) => (e.preventDefault(), navigate(profilePath(user.username)))}>
            Back to your profile
          </a>
        </p>
      </section>
    </Page>
  );
}
