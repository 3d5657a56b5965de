// Sign up and sign in. Field errors from the API (taken username, bad
// email, short password) appear under the field they name; a wrong pair
// appears under the password.
import { useEffect, useState } from 'preact/hooks';
import { api, setSession } from '../api.js';
import { Link, navigate, useQuery } from '../router.jsx';
import { FieldError, Page, fieldSentence } from '../ui.jsx';

function Field({ id, label, error: raw, hint, ...input }) {
  const error = fieldSentence(label.replace(/ \(optional\)$/, ''), raw);
  const describedBy = [error ? id + '-error' : null, hint ? id + '-hint' : null].filter(Boolean).join(' ') || undefined;
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input id={id} name={id} aria-invalid={error ? 'true' : undefined} aria-describedby={describedBy} {...input} />
      {hint && !error && (
        <p class="hint" id={id + '-hint'}>
          {hint}
        </p>
      )}
      <FieldError id={id + '-error'} text={error} />
    </div>
  );
}

function Logo() {
  return (
    <h1 class="logo big">
      <span>Social</span>
    </h1>
  );
}

function afterAuth(next) {
  navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', { replace: true });
}

// Errors by field from an ApiError; a conflict without fields goes on the username.
function fieldsOf(err, fallbackField) {
  if (!err) return {};
  if (err.fields) return err.fields;
  if (err.status === 409) return { [fallbackField]: err.message };
  return {};
}

export function SignUp() {
  const q = useQuery();
  const [form, setForm] = useState({ username: '', email: '', display_name: '', password: '' });
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const el = document.getElementById('email');
    if (el) el.focus();
  }, []);
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });

  const submit = async (e) => {
    e.preventDefault();
    const local = {};
    const username = form.username.trim().toLowerCase();
    if (!/^[a-z0-9._]{1,30}$/.test(username)) local.username = 'Use 1–30 letters, numbers, periods or underscores.';
    if (!/^\S+@\S+\.\S+$/.test(form.email.trim())) local.email = 'Enter a valid email address.';
    if ([...form.password].length < 8) local.password = 'Use at least 8 characters.';
    if (Object.keys(local).length) {
      setErr({ fields: local });
      return;
    }
    setBusy(true);
    setErr(null);
    try {
      const body = { username, email: form.email.trim(), password: form.password };
      if (form.display_name.trim()) body.display_name = form.display_name.trim();
      const r = await api.post('/auth/register', body);
      setSession(r);
      afterAuth(q.get('next'));
    } catch (e2) {
      setErr(e2);
    } finally {
      setBusy(false);
    }
  };

  const f = fieldsOf(err, 'username');
  const general = err && !err.fields && err.status !== 409 ? err.message : null;
  return (
    <Page title="Sign up" narrow>
      <div class="auth-card">
        <Logo />
        <p class="muted center">Sign up to see photos from your friends.</p>
        <form class="form" onSubmit={submit} noValidate>
          <Field id="email" label="Email" type="email" autocomplete="email" value={form.email} onInput={set('email')} error={f.email} />
          <Field id="display_name" label="Full name (optional)" autocomplete="name" value={form.display_name} onInput={set('display_name')} error={f.display_name} />
          <Field
            id="username"
            label="Username"
            autocomplete="username"
            autocapitalize="none"
            spellcheck={false}
            value={form.username}
            onInput={set('username')}
            error={f.username}
            hint="Letters, numbers, periods and underscores."
          />
          <Field id="password" label="Password" type="password" autocomplete="new-password" value={form.password} onInput={set('password')} error={f.password} hint="At least 8 characters." />
          <FieldError id="signup-error" text={general} />
          <button class="btn primary block" type="submit" disabled={busy}>
            {busy ? 'Signing up…' : 'Sign up'}
          </button>
        </form>
      </div>
      <p class="auth-switch">
        Have an account? <Link href={'/signin' + (q.get('next') ? '?next=' + encodeURIComponent(q.get('next')) : '')}>Sign in</Link>
      </p>
    </Page>
  );
}

export function SignIn() {
  const q = useQuery();
  const [login, setLogin] = useState('');
  const [password, setPassword] = useState('');
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const el = document.getElementById('login');
    if (el) el.focus();
  }, []);

  const submit = async (e) => {
    e.preventDefault();
    if (!login.trim() || !password) {
      setErr({ fields: { ...(login.trim() ? {} : { login: 'Enter your username or email.' }), ...(password ? {} : { password: 'Enter your password.' }) } });
      return;
    }
    setBusy(true);
    setErr(null);
    try {
      const r = await api.post('/auth/login', { login: login.trim(), password });
      setSession(r);
      afterAuth(q.get('next'));
    } catch (e2) {
      setErr(e2);
    } finally {
      setBusy(false);
    }
  };

  const f = (err && err.fields) || {};
  const wrongPair = err && err.code === 'invalid_credentials' ? "That username or email and password don't match. Check them and try again." : null;
  const general = err && !err.fields && !wrongPair ? err.message : null;
  return (
    <Page title="Sign in" narrow>
      <div class="auth-card">
        <Logo />
        <form class="form" onSubmit={submit} noValidate>
          <Field
            id="login"
            label="Username or email"
            autocomplete="username"
            autocapitalize="none"
            spellcheck={false}
            value={login}
            onInput={(e) => setLogin(e.currentTarget.value)}
            error={f.login}
          />
          <Field
            id="password"
            label="Password"
            type="password"
            autocomplete="current-password"
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
            error={f.password || wrongPair}
          />
          <FieldError id="signin-error" text={general} />
          <button class="btn primary block" type="submit" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </form>
      </div>
      <p class="auth-switch">
        Don't have an account? <Link href={'/signup' + (q.get('next') ? '?next=' + encodeURIComponent(q.get('next')) : '')}>Sign up</Link>
      </p>
    </Page>
  );
}
