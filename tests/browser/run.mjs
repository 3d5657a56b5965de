#!/usr/bin/env node
// Browser tests for the web UI: Debian's Chromium driven by playwright-core
// (from web/node_modules) against a running system; this script starts
// nothing itself.
//
//   node tests/browser/run.mjs --base-url http://127.0.0.1:18180 [--out tests/out/browser] [--only text]
//
// The same story runs at a phone width (375 px) and a desktop width
// (1280 px): two people sign up, one posts a photo from a file, the other
// follows, sees it in the feed, likes and comments, they exchange messages,
// and the notification and message badges update live over the WebSocket.
// Around it: readable errors (taken username, wrong password, not an
// image), offline state with retry, deep links, layout and keyboard checks.
// Screenshots go to the output folder.
//
// Output: one line per test ("ok", "not ok", "skip ... # SKIP reason") and a
// closing "N passed, M failed, K skipped". A test whose endpoint the gateway
// does not route yet ("no such endpoint") is skipped with that reason, never
// passed. Exit status 1 on any failure. Every wait is bounded: each test has
// a time limit, and the whole run a global one.
import { createRequire } from 'node:module';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { gunzipSync, gzipSync } from 'node:zlib';
import http from 'node:http';
import { mkdtempSync } from 'node:fs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const require = createRequire(join(ROOT, 'web/package.json'));
const { chromium } = require('playwright-core');

const argv = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = argv.indexOf('--' + name);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : fallback;
};
const BASE = opt('base-url', process.env.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const OUT = resolve(opt('out', join(ROOT, 'tests/out/browser')));
const ONLY = opt('only', '');
const TEST_MS = Number(process.env.BROWSER_TEST_TIMEOUT_MS || 60000);
const RUN_MS = Number(process.env.BROWSER_RUN_TIMEOUT_MS || 8 * 60000);
const WAIT = 15000; // longest wait for one thing to appear (events are asynchronous)

mkdirSync(OUT, { recursive: true });

// ---------- a tiny test harness with Playwright-style skips ----------

class Skip extends Error {}
const skip = (reason) => {
  throw new Skip(reason);
};
const counts = { passed: 0, failed: 0, skipped: 0 };
const failures = [];
let n = 0;

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Runs one test; returns true when it passed (later steps depend on it).
async function test(name, fn, { after } = {}) {
  n++;
  if (ONLY && !name.includes(ONLY)) {
    counts.skipped++;
    console.log(`skip ${n} - ${name} # SKIP not selected (--only)`);
    return false;
  }
  if (after && after.failed) {
    counts.skipped++;
    console.log(`skip ${n} - ${name} # SKIP needs "${after.name}", which did not pass`);
    return false;
  }
  const started = Date.now();
  try {
    await withTimeout(Promise.resolve().then(fn), TEST_MS, name);
    counts.passed++;
    console.log(`ok ${n} - ${name} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
    return true;
  } catch (e) {
    if (e instanceof Skip) {
      counts.skipped++;
      console.log(`skip ${n} - ${name} # SKIP ${e.message}`);
      return false;
    }
    counts.failed++;
    failures.push(name);
    console.log(`not ok ${n} - ${name} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
    console.log(
      String((e && e.stack) || e)
        .split('\n')
        .slice(0, 12)
        .map((l) => '  # ' + l)
        .join('\n'),
    );
    return false;
  }
}

// A step that later steps depend on: {name, failed}.
async function step(name, fn, opts) {
  const ok = await test(name, fn, opts);
  return { name, failed: !ok };
}

function expect(cond, message) {
  if (!cond) throw new Error('expected: ' + message);
}

// ---------- what the system offers right now ----------

const routeCache = new Map();

// Whether the gateway routes METHOD path; only its own "no such endpoint"
// 404 (or a 405 for an unrouted method) means "not there yet".
async function routed(method, path) {
  const key = method + ' ' + path;
  if (routeCache.has(key)) return routeCache.get(key);
  let ok = true;
  try {
    const res = await fetch(BASE + '/api/v1' + path, { method, headers: { 'Content-Type': 'application/json' }, body: method === 'GET' ? undefined : '{}' });
    const body = await res.json().catch(() => null);
    const msg = body && body.error ? body.error.message || '' : '';
    if (res.status === 404 && /no such endpoint/i.test(msg)) ok = false;
    if (res.status === 405 && body && body.error && body.error.code === 'method_not_allowed') ok = false;
  } catch {
    ok = false;
  }
  routeCache.set(key, ok);
  return ok;
}

async function needs(...routes) {
  for (const r of routes) {
    const [method, path] = r.split(' ');
    if (!(await routed(method, path))) skip(`${method} /api/v1${path} is not routed by the gateway yet`);
  }
}

// ---------- browser helpers ----------

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

const pageErrors = [];

async function newUserPage(browser, viewport, who) {
  const context = await browser.newContext({
    viewport: viewport.size,
    isMobile: viewport.mobile,
    hasTouch: viewport.mobile,
    deviceScaleFactor: 1,
    baseURL: BASE,
    locale: 'en-US',
  });
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`[${viewport.name} ${who}] ${e.message}`));
  return { context, page };
}

async function shot(page, viewport, name) {
  await page.screenshot({ path: join(OUT, `${viewport.name}-${name}.png`), fullPage: false });
}

// The link in whichever navigation is showing (side bar or tab/top bar).
const navLink = (page, name) => page.getByRole('link', { name, exact: false }).first();

// A small photo-like JPEG drawn on a canvas in the page.
async function makeJpeg(page, w, h, hue) {
  const dataUrl = await page.evaluate(
    ([w, h, hue]) => {
      const c = document.createElement('canvas');
      c.width = w;
      c.height = h;
      const g = c.getContext('2d');
      const sky = g.createLinearGradient(0, 0, 0, h);
      sky.addColorStop(0, `hsl(${hue} 80% 60%)`);
      sky.addColorStop(1, `hsl(${(hue + 40) % 360} 90% 75%)`);
      g.fillStyle = sky;
      g.fillRect(0, 0, w, h);
      g.fillStyle = `hsl(${(hue + 180) % 360} 70% 55%)`;
      g.beginPath();
      g.arc(w * 0.7, h * 0.35, h * 0.15, 0, Math.PI * 2);
      g.fill();
      g.fillStyle = 'rgba(20,40,30,0.85)';
      g.beginPath();
      g.moveTo(0, h);
      g.lineTo(w * 0.3, h * 0.55);
      g.lineTo(w * 0.55, h * 0.8);
      g.lineTo(w * 0.8, h * 0.5);
      g.lineTo(w, h * 0.75);
      g.lineTo(w, h);
      g.fill();
      return c.toDataURL('image/jpeg', 0.85);
    },
    [w, h, hue],
  );
  return Buffer.from(dataUrl.split(',')[1], 'base64');
}

// The unread number on a navigation link ("Notifications, 3 unread"), 0 when none.
async function badge(page, name) {
  const link = page.getByRole('link', { name: new RegExp('^' + name + '(, \\d+ unread)?$') }).first();
  const label = (await link.getAttribute('aria-label')) || '';
  const m = /, (\d+) unread$/.exec(label);
  return m ? Number(m[1]) : 0;
}

// Whether the page's WebSocket is open (the app marks <html data-live>).
async function waitLive(page) {
  try {
    await page.waitForFunction(() => document.documentElement.dataset.live === 'open', null, { timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

async function signUp(page, user) {
  await page.goto('/signup');
  await page.locator('#email').fill(user.email);
  await page.locator('#display_name').fill(user.display);
  await page.locator('#username').fill(user.username);
  await page.locator('#password').fill(user.password);
  await page.getByRole('button', { name: 'Sign up' }).click();
  await page.waitForURL((u) => new URL(u).pathname === '/', { timeout: WAIT });
  await navLink(page, 'Home').waitFor();
}

// Polls fn (which returns truthy when done) until it does or time runs out.
async function eventually(what, fn, ms = WAIT) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 400));
  }
  throw new Error(`${what} did not happen within ${ms} ms${last ? ': ' + last.message : ''}`);
}

// ---------- the story, at one viewport ----------

async function story(browser, viewport) {
  const tag = Date.now().toString(36).slice(-5) + viewport.name[0];
  const A = { username: `ann_${tag}`, email: `ann_${tag}@example.com`, password: 'correct horse 1', display: 'Ann Lee' };
  const B = { username: `bob_${tag}`, email: `bob_${tag}@example.com`, password: 'battery staple 2', display: 'Bob Ray' };
  const V = `[${viewport.name} ${viewport.size.width}px]`;
  const opened = [];
  let postPath = null;

  try {
    const signup = await step(`${V} two people sign up`, async () => {
      await needs('POST /auth/register');
      Object.assign(A, await newUserPage(browser, viewport, 'ann'));
      Object.assign(B, await newUserPage(browser, viewport, 'bob'));
      opened.push(A.context, B.context);
      await signUp(A.page, A);
      await signUp(B.page, B);
      await shot(A.page, viewport, '01-empty-feed');
    });

    await test(
      `${V} layout: ${viewport.mobile ? 'bottom tab bar' : 'side navigation'}, no sideways scrolling`,
      async () => {
        const page = A.page;
        const tabBar = await page.locator('.tab-bar').isVisible();
        const sideNav = await page.locator('.side-nav').isVisible();
        if (viewport.mobile) expect(tabBar && !sideNav, 'the tab bar shows and the side navigation is hidden on a phone');
        else expect(sideNav && !tabBar, 'the side navigation shows and the tab bar is hidden on a desktop');
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow <= 0, `no horizontal overflow (page is ${overflow}px wider than the window)`);
        // Keyboard: on a fresh load the first Tab reaches the skip link.
        await page.reload();
        await navLink(page, 'Home').waitFor();
        await page.keyboard.press('Tab');
        const focused = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
        expect(/Skip to content/.test(focused || ''), 'the first Tab focuses "Skip to content"');
      },
      { after: signup },
    );

    await test(
      `${V} errors are shown next to their cause: taken username, wrong password`,
      async () => {
        await needs('POST /auth/register', 'POST /auth/login');
        const { context, page } = await newUserPage(browser, viewport, 'guest');
        opened.push(context);
        await page.goto('/signup');
        await page.locator('#email').fill(`other_${tag}@example.com`);
        await page.locator('#username').fill(A.username);
        await page.locator('#password').fill('long enough 1');
        await page.getByRole('button', { name: 'Sign up' }).click();
        const taken = page.locator('#username-error');
        await taken.waitFor();
        expect(/taken|exists|already|use/i.test(await taken.textContent()), `the username error says it is taken (got "${await taken.textContent()}")`);
        expect((await page.locator('#username').getAttribute('aria-invalid')) === 'true', 'the username field is marked invalid');
        await shot(page, viewport, '02-username-taken');
        await page.getByRole('link', { name: 'Sign in' }).click();
        await page.locator('#login').fill(A.username);
        await page.locator('#password').fill('not the password');
        await page.getByRole('button', { name: 'Sign in' }).click();
        const wrong = page.locator('#password-error');
        await wrong.waitFor();
        expect(/don't match/.test(await wrong.textContent()), 'the password error explains the pair does not match');
        await shot(page, viewport, '03-wrong-password');
        await context.close();
      },
      { after: signup },
    );

    const posted = await step(
      `${V} ann posts a photo from a file (preview, alt text, caption, progress)`,
      async () => {
        await needs('POST /posts');
        const page = A.page;
        await navLink(page, 'Create').click();
        await page.waitForURL(/\/create$/);
        const jpeg = await makeJpeg(page, 1200, 900, viewport.mobile ? 200 : 20);
        await page.locator('#photo-input').setInputFiles({ name: 'sunset.jpg', mimeType: 'image/jpeg', buffer: jpeg });
        await page.locator('.preview img').first().waitFor();
        await page.locator('#alt-0').fill('A mountain ridge under a bright sky');
        await page.locator('#caption').fill(`Evening walk #sunset #hills with @${B.username}`);
        await shot(page, viewport, '04-create-preview');
        await page.getByRole('button', { name: 'Share' }).click();
        await page.waitForURL(/\/p\/\d+$/, { timeout: 30000 });
        postPath = new URL(page.url()).pathname;
        const img = page.getByRole('img', { name: 'A mountain ridge under a bright sky' });
        await img.waitFor();
        await eventually('the photo loads', () => img.evaluate((el) => el.complete && el.naturalWidth > 0));
        await page.getByRole('link', { name: '#sunset' }).first().waitFor();
        await shot(page, viewport, '05-post');
      },
      { after: signup },
    );

    await test(
      `${V} uploads: not an image and too large are explained next to the photos`,
      async () => {
        await needs('POST /posts');
        const page = A.page;
        await page.goto('/create');
        // Caught before upload: the wrong type.
        await page.locator('#photo-input').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
        await page.getByText('Not a photo we can read').waitFor();
        await page.getByRole('button', { name: 'Remove photo 1' }).click();
        // Caught before upload too: says JPEG, does not decode.
        await page.locator('#photo-input').setInputFiles({ name: 'fake.jpg', mimeType: 'image/jpeg', buffer: Buffer.from('this is not really a jpeg'.repeat(20)) });
        await page.getByText("This file isn't a photo we can read").waitFor();
        await page.getByRole('button', { name: 'Share' }).click();
        await page.getByText('Remove the photos marked below first.').waitFor();
        await shot(page, viewport, '06-not-an-image');
        await page.getByRole('button', { name: 'Remove photo 1' }).click();
        // The server's 413 envelope, as the media service sends it for a huge
        // image (faked here so the test does not upload 10 MiB).
        await page.route('**/api/v1/posts', (route) =>
          route.fulfill({ status: 413, contentType: 'application/json', body: JSON.stringify({ error: { code: 'too_large', message: 'image larger than 10 MiB' } }) }),
        );
        await page.locator('#photo-input').setInputFiles({ name: 'big.jpg', mimeType: 'image/jpeg', buffer: await makeJpeg(page, 300, 200, 10) });
        await page.locator('.preview img').first().waitFor();
        await page.getByRole('button', { name: 'Share' }).click();
        const err = page.locator('#photos-error');
        await err.waitFor();
        expect(/too large/i.test(await err.textContent()), `the error says the file is too large (got "${await err.textContent()}")`);
        await page.unroute('**/api/v1/posts');
        await shot(page, viewport, '06b-too-large');
      },
      { after: signup },
    );

    const followed = await step(
      `${V} bob follows ann from her profile`,
      async () => {
        await needs('POST /users/x/follow');
        const page = B.page;
        // A deep link, loaded fresh: the gateway's index.html fallback serves the app.
        await page.goto(`/u/${A.username}/`);
        await page.getByRole('heading', { name: A.username }).waitFor();
        await page.getByRole('button', { name: `Follow ${A.username}` }).click();
        await page.getByRole('button', { name: `Following ${A.username}` }).waitFor();
        await page.getByText('1 follower').waitFor();
        await shot(page, viewport, '07-following');
      },
      { after: signup },
    );

    const inFeed = await step(
      `${V} bob sees ann's post in his feed`,
      async () => {
        if (posted.failed) skip('needs the post from an earlier step');
        await needs('GET /feed');
        const page = B.page;
        await navLink(page, 'Home').click();
        await page.waitForURL((u) => new URL(u).pathname === '/');
        const card = page.getByRole('article', { name: `Post by ${A.username}` });
        await eventually('the post shows in the feed', async () => {
          if (await card.count()) return true;
          await page.getByRole('button', { name: 'Refresh feed' }).click();
          await page.waitForTimeout(300);
          return (await card.count()) > 0;
        });
        await card.getByRole('img', { name: 'A mountain ridge under a bright sky' }).waitFor();
        await shot(page, viewport, '08-feed');
      },
      { after: followed },
    );

    const liked = await step(
      `${V} bob likes ann's post in his feed; her notification badge goes up live`,
      async () => {
        await needs('POST /posts/1/like');
        const page = B.page;
        const card = page.getByRole('article', { name: `Post by ${A.username}` }).first();
        // Ann sits on her post page with the live connection open; nothing
        // reloads it from here on.
        await A.page.goto(postPath);
        await A.page.getByRole('img', { name: 'A mountain ridge under a bright sky' }).waitFor();
        const live = (await routed('GET', '/notifications')) && (await waitLive(A.page));
        const before = live ? await badge(A.page, 'Notifications') : 0;
        await card.getByRole('button', { name: 'Like', exact: true }).click();
        await card.getByRole('button', { name: 'Unlike' }).waitFor();
        await card.getByText('1 like').waitFor();
        await shot(page, viewport, '09-liked');
        if (!live) skip('liked; the live badge needs GET /api/v1/notifications and the WebSocket at /api/v1/stream');
        await eventually(`ann's notification badge goes above ${before}`, async () => (await badge(A.page, 'Notifications')) > before);
        await shot(A.page, viewport, '10-notification-badge');
      },
      { after: inFeed },
    );

    const commented = await step(
      `${V} bob comments on the post`,
      async () => {
        await needs('POST /posts/1/comments');
        const page = B.page;
        const card = page.getByRole('article', { name: `Post by ${A.username}` }).first();
        await card.getByRole('button', { name: 'Comment' }).click();
        await page.waitForURL(/\/p\/\d+/);
        await page.locator('#comment-input').fill('What a view!');
        await page.getByRole('button', { name: 'Post', exact: true }).click();
        const error = page.locator('#comment-error');
        await Promise.race([page.locator('.comments').getByText('What a view!').waitFor(), error.waitFor().then(async () => {
          throw new Error('the comment was refused: ' + (await error.textContent()));
        })]);
        await shot(page, viewport, '11-commented');
      },
      { after: inFeed },
    );

    await test(
      `${V} after a reload ann's post page shows the like${commented.failed ? '' : ' and the comment'}`,
      async () => {
        const page = A.page;
        await page.reload();
        await page.getByText('1 like').waitFor();
        if (!commented.failed) await page.locator('.comments').getByText('What a view!').waitFor();
      },
      { after: liked },
    );

    const messaged = await step(
      `${V} bob messages ann; her messages badge updates live; she replies`,
      async () => {
        await needs('POST /conversations', 'GET /conversations');
        const page = B.page;
        await page.goto(`/u/${A.username}/`);
        await page.getByRole('button', { name: 'Message' }).click();
        await page.waitForURL(/\/direct\/\d+$/);
        await page.locator('#message-input').fill(`Hi ${A.display}! Loved the photo.`);
        await page.getByRole('button', { name: 'Send' }).click();
        await page.locator('.bubble', { hasText: 'Loved the photo.' }).waitFor();
        // Ann has not reloaded: the badge comes over the WebSocket.
        await eventually("ann's messages badge shows the new message", async () => (await badge(A.page, 'Messages')) > 0);
        await shot(A.page, viewport, '12-message-badge');
        await navLink(A.page, 'Messages').click();
        await A.page.waitForURL(/\/direct$/);
        const conv = A.page.getByRole('link', { name: new RegExp(B.username) }).first();
        await conv.waitFor();
        await shot(A.page, viewport, '13-inbox');
        await conv.click();
        await A.page.locator('.bubble', { hasText: 'Loved the photo.' }).waitFor();
        await A.page.locator('#message-input').fill('Thanks Bob, see you soon');
        await A.page.getByRole('button', { name: 'Send' }).click();
        // Bob's thread is open: the reply arrives live.
        await page.locator('.bubble', { hasText: 'Thanks Bob' }).waitFor({ timeout: WAIT });
        await shot(page, viewport, '14-thread');
        await shot(A.page, viewport, '15-thread-ann');
      },
      { after: signup },
    );

    await test(
      `${V} ann's notifications list the like, the comment and the follow; the badge clears`,
      async () => {
        await needs('GET /notifications');
        if (liked.failed) skip('needs the like from an earlier step');
        const page = A.page;
        await navLink(page, 'Notifications').click();
        await page.waitForURL(/\/notifications$/);
        await page.getByText('liked your post.').first().waitFor();
        if (!commented.failed) await page.getByText('commented:').first().waitFor();
        await page.getByText('started following you.').first().waitFor();
        await shot(page, viewport, '16-notifications');
        await eventually('the notifications badge clears', async () => (await page.getByRole('link', { name: /^Notifications, \d+ unread$/ }).count()) === 0);
      },
      { after: messaged.failed ? liked : messaged },
    );

    await test(
      `${V} a post of two photos: carousel with buttons, each photo with its alt text`,
      async () => {
        await needs('POST /posts');
        const page = A.page;
        await navLink(page, 'Create').click();
        await page.waitForURL(/\/create$/);
        await page.locator('#photo-input').setInputFiles([
          { name: 'one.jpg', mimeType: 'image/jpeg', buffer: await makeJpeg(page, 900, 900, 120) },
          { name: 'two.jpg', mimeType: 'image/jpeg', buffer: await makeJpeg(page, 800, 1000, 300) },
        ]);
        await page.locator('#alt-1').fill('The second photo, in purple');
        await page.locator('#caption').fill('Two views #carousel');
        await page.getByRole('button', { name: 'Share' }).click();
        await page.waitForURL(/\/p\/\d+$/, { timeout: 30000 });
        await page.getByText('1/2').waitFor();
        await page.getByRole('button', { name: 'Next photo' }).click();
        await page.getByText('2/2').waitFor();
        await eventually('the carousel slides to the second photo', () =>
          page.locator('.carousel-strip').evaluate((el) => Math.abs(el.scrollLeft - el.clientWidth) < 2),
        );
        await page.getByRole('img', { name: 'The second photo, in purple' }).waitFor();
        // The first photo has no alt text of its own: it gets a description.
        await page.locator(`img[alt="Photo by ${A.username} (1 of 2)"]`).waitFor({ state: 'attached' });
        await shot(page, viewport, '20-carousel');
      },
      { after: posted },
    );

    await test(
      `${V} the feed loads the next page on scrolling (infinite scroll)`,
      async () => {
        await needs('POST /posts', 'GET /feed');
        if (inFeed.failed) skip("needs ann's post in bob's feed from an earlier step");
        // Nine more posts by ann through the API (her token from her page), so
        // bob's feed holds more than one page of ten.
        const token = await A.page.evaluate(() => JSON.parse(localStorage.getItem('social.session')).access_token);
        const jpeg = await makeJpeg(A.page, 480, 360, 60);
        for (let i = 0; i < 9; i++) {
          const form = new FormData();
          form.append('image', new Blob([jpeg], { type: 'image/jpeg' }), `more-${i}.jpg`);
          form.append('caption', `More light, part ${i + 1} #hills`);
          const r = await fetch(BASE + '/api/v1/posts', { method: 'POST', headers: { Authorization: 'Bearer ' + token }, body: form });
          expect(r.status === 201, `post ${i + 1} created (got ${r.status})`);
        }
        // The feed fans out asynchronously: wait until bob's holds all eleven.
        const bobToken = await B.page.evaluate(() => JSON.parse(localStorage.getItem('social.session')).access_token);
        await eventually("bob's feed holds all eleven posts", async () => {
          const r = await fetch(BASE + '/api/v1/feed?limit=20', { headers: { Authorization: 'Bearer ' + bobToken } });
          const body = await r.json();
          return r.status === 200 && body.items.length >= 11;
        });
        const page = B.page;
        await page.goto('/');
        const cards = page.getByRole('article');
        await eventually('the first page shows ten posts', async () => (await cards.count()) >= 10);
        expect((await cards.count()) === 10, `one page of ten at first (got ${await cards.count()})`);
        await eventually('scrolling down brings the next page', async () => {
          await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
          return (await cards.count()) > 10;
        });
        await page.getByText("You're all caught up.").waitFor();
      },
      { after: posted },
    );

    await test(
      `${V} search finds ann and #sunset; the tag page shows her post`,
      async () => {
        await needs('GET /search/users', 'GET /search/hashtags', 'GET /hashtags/x/posts');
        const page = B.page;
        await navLink(page, 'Search').click();
        await page.waitForURL(/\/search/);
        await page.locator('#search-input').fill(A.username.slice(0, 8));
        await page.getByRole('link', { name: new RegExp(A.username) }).first().waitFor();
        await shot(page, viewport, '21-search');
        await page.getByRole('link', { name: 'Tags' }).click();
        const tagLink = page.getByRole('link', { name: /#sunset/ }).first();
        await eventually('#sunset shows in the tag results', async () => {
          if (await tagLink.count()) return true;
          await page.locator('#search-input').fill('suns');
          await page.waitForTimeout(400);
          await page.locator('#search-input').fill('sunset');
          await page.waitForTimeout(600);
          return (await tagLink.count()) > 0;
        });
        await tagLink.click();
        await page.waitForURL(/\/tags\/sunset$/);
        await page.getByRole('heading', { name: '#sunset' }).waitFor();
        await page.locator('.tile').first().waitFor();
        await shot(page, viewport, '22-hashtag');
      },
      { after: posted },
    );

    await test(
      `${V} bob shares ann's post with her; it shows in their conversation`,
      async () => {
        await needs('POST /posts/1/share');
        if (messaged.failed) skip('needs the conversation from an earlier step');
        const page = B.page;
        await page.goto(postPath);
        await page.getByRole('button', { name: 'Share' }).click();
        const dialog = page.getByRole('dialog');
        await dialog.locator('#share-to').fill(A.username);
        await dialog.locator('#share-text').fill('Look at this one');
        await dialog.getByRole('button', { name: 'Send' }).click();
        await page.getByText(`Sent to ${A.username}`).waitFor();
        await A.page.goto('/direct');
        await A.page.getByRole('link', { name: new RegExp(B.username) }).first().click();
        await A.page.locator('.shared-post').first().waitFor();
        await shot(A.page, viewport, '23-shared-post');
      },
      { after: posted },
    );

    await test(
      `${V} private account: ann's follow request to bob waits, bob approves it`,
      async () => {
        await needs('PATCH /me', 'GET /me/follow-requests');
        const page = B.page;
        await page.goto('/settings');
        await page.getByLabel('Private account').check();
        await page.getByRole('button', { name: 'Save', exact: true }).click();
        await page.getByText('Profile saved').waitFor();
        await A.page.goto(`/u/${B.username}/`);
        await A.page.getByText('This account is private').waitFor();
        await A.page.getByRole('button', { name: new RegExp(`^Follow( back)? ${B.username}$`) }).click();
        await A.page.getByRole('button', { name: `Requested ${B.username}` }).waitFor();
        await shot(A.page, viewport, '24-requested');
        await page.goto(`/u/${B.username}/`);
        await page.getByRole('link', { name: 'Requests' }).click();
        await page.getByRole('button', { name: `Confirm ${A.username}` }).click();
        await page.getByText(`${A.username} can now see your posts`).waitFor();
        await A.page.reload();
        await A.page.getByRole('button', { name: `Following ${B.username}` }).waitFor();
        await shot(A.page, viewport, '25-approved');
      },
      { after: signup },
    );

    await test(
      `${V} edit profile: bio and a new avatar`,
      async () => {
        await needs('PATCH /me', 'PUT /me/avatar');
        const page = A.page;
        await page.goto('/settings');
        await page.locator('#pf-bio').fill('Hills, light and long walks.');
        await page.getByRole('button', { name: 'Save', exact: true }).click();
        await page.getByText('Profile saved').waitFor();
        const jpeg = await makeJpeg(page, 400, 400, 40);
        await page.getByLabel('Choose a profile photo').setInputFiles({ name: 'me.jpg', mimeType: 'image/jpeg', buffer: jpeg });
        await page.getByText('Profile photo updated').waitFor();
        await page.goto(`/u/${A.username}/`);
        await page.getByText('Hills, light and long walks.').waitFor();
        const img = page.locator('.profile-avatar img');
        await img.waitFor();
        await eventually('the avatar loads', () => img.evaluate((el) => el.complete && el.naturalWidth > 0));
        await shot(page, viewport, '26-own-profile');
      },
      { after: signup },
    );

    await test(
      `${V} profile grid: lazy thumbnails with srcset in square boxes`,
      async () => {
        if (posted.failed) skip('needs the post from an earlier step');
        const page = B.page;
        await page.goto(`/u/${A.username}/`);
        const tile = page.locator('.tile img[alt="A mountain ridge under a bright sky"]');
        await tile.waitFor();
        const attrs = await tile.evaluate((el) => ({ loading: el.loading, srcset: el.getAttribute('srcset') || '', alt: el.alt, w: el.getBoundingClientRect().width, h: el.getBoundingClientRect().height }));
        expect(attrs.loading === 'lazy', 'thumbnails load lazily');
        expect(attrs.alt === 'A mountain ridge under a bright sky', 'the thumbnail carries the alt text');
        expect(/ \d+w/.test(attrs.srcset), `a srcset with widths (got "${attrs.srcset}")`);
        expect(Math.abs(attrs.w - attrs.h) < 2, 'the tile is square');
        await shot(page, viewport, '17-profile');
      },
      { after: posted },
    );

    await test(
      `${V} offline: the page says so and "Try again" recovers`,
      async () => {
        await needs('GET /explore');
        const { page, context } = B;
        await context.setOffline(true);
        await navLink(page, 'Explore').click();
        await page.getByText("You're offline").first().waitFor();
        await shot(page, viewport, '18-offline');
        // Still offline, "Try again" keeps saying so.
        await page.getByRole('button', { name: 'Try again' }).first().click();
        await page.getByText("You're offline").first().waitFor();
        // Back online: the screen recovers (failed loads retry on their own).
        await context.setOffline(false);
        await eventually('the explore page loads', async () => (await page.getByText(/You're offline|Can't reach the server/).count()) === 0);
        await page.locator('.explore-main .tile, .explore-main .empty').first().waitFor();
        await shot(page, viewport, '18-back-online');
      },
      { after: signup },
    );

    await test(
      `${V} a service down (503): the page says so and "Try again" recovers`,
      async () => {
        await needs('GET /feed');
        const page = B.page;
        // The gateway's answer when a service is down, for the feed only.
        await page.route('**/api/v1/feed*', (route) =>
          route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: { code: 'unavailable', message: 'the feed service is not answering' } }) }),
        );
        await page.goto('/');
        await page.getByText('Temporarily unavailable', { exact: true }).waitFor();
        await shot(page, viewport, '19-unavailable');
        await page.unroute('**/api/v1/feed*');
        await page.getByRole('button', { name: 'Try again' }).click();
        await eventually('the feed loads', async () => (await page.getByText('Temporarily unavailable', { exact: true }).count()) === 0);
        await page.getByRole('button', { name: 'Refresh feed' }).waitFor();
      },
      { after: signup },
    );

    await test(
      `${V} sign out and sign back in`,
      async () => {
        const page = B.page;
        await page.goto('/settings');
        await page.getByRole('button', { name: 'Sign out' }).click();
        await page.waitForURL(/\/signin/);
        await page.goto('/');
        await page.waitForURL(/\/signin/);
        await page.locator('#login').fill(B.email);
        await page.locator('#password').fill(B.password);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.waitForURL((u) => new URL(u).pathname === '/');
        await navLink(page, 'Home').waitFor();
      },
      { after: signup },
    );

    await test(
      `${V} an expired access token is refreshed silently`,
      async () => {
        await needs('POST /auth/refresh', 'GET /me');
        const page = A.page;
        // Make the stored access token useless and its expiry past.
        await page.evaluate(() => {
          const s = JSON.parse(localStorage.getItem('social.session'));
          s.access_token = 'expired.' + s.access_token.split('.')[1] + '.x';
          s.expires_at = Date.now() + 600000;
          localStorage.setItem('social.session', JSON.stringify(s));
        });
        await page.goto('/settings');
        await page.getByRole('heading', { name: 'Edit profile' }).waitFor();
        await page.locator('#pf-display_name').waitFor();
        expect(/\/settings$/.test(page.url()), 'still signed in after the 401 and refresh');
        await shot(page, viewport, '27-settings');
      },
      { after: signup },
    );
  } finally {
    for (const c of opened) await c.close().catch(() => {});
  }
}

// ---------- what the first visit costs ----------

async function firstLoad() {
  const res = await fetch(BASE + '/some/client/route');
  expect(res.status === 200, `a client-side route is answered with the app (got ${res.status})`);
  const html = await res.text();
  expect(/<div id="app">/.test(html), 'the answer is the app shell');
  expect(/no-cache/.test(res.headers.get('cache-control') || ''), 'index.html is revalidated (Cache-Control: no-cache)');
  const scripts = [...html.matchAll(/<(?:script[^>]*\ssrc|link[^>]*rel="modulepreload"[^>]*\shref)="([^"]+)"/g)].map((m) => m[1]);
  expect(scripts.length > 0, 'the page loads at least one script');
  let total = 0;
  const parts = [];
  for (const src of scripts) {
    const r = await fetch(new URL(src, BASE));
    expect(r.status === 200, `${src} is served (got ${r.status})`);
    if (src.startsWith('/assets/')) expect(/immutable/.test(r.headers.get('cache-control') || ''), `${src} is cached immutably`);
    const gz = gzipSync(Buffer.from(await r.arrayBuffer()), { level: 9 }).length;
    total += gz;
    parts.push(`${src} ${(gz / 1024).toFixed(1)} KiB`);
  }
  console.log(`  # first-load JavaScript, gzipped: ${(total / 1024).toFixed(1)} KiB (${parts.join(', ')})`);
  expect(total < 150 * 1024, `under 150 KiB gzipped (got ${(total / 1024).toFixed(1)} KiB)`);
}

// GET path with the given request headers, without any decoding: the
// status, headers and the bytes as they came over the wire.
function rawGet(path, headers) {
  return new Promise((resolveGet, rejectGet) => {
    const req = http.get(new URL(path, BASE), { headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolveGet({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', rejectGet);
    req.setTimeout(10000, () => req.destroy(new Error('timed out')));
  });
}

async function compressed() {
  const plain = await rawGet('/', {});
  expect(plain.status === 200 && !plain.headers['content-encoding'], 'without Accept-Encoding the app shell comes uncompressed');
  const html = plain.body.toString();
  const script = (html.match(/<script[^>]*\ssrc="(\/assets\/[^"]+\.js)"/) || [])[1];
  const style = (html.match(/<link[^>]*\shref="(\/assets\/[^"]+\.css)"/) || [])[1];
  expect(script && style, 'the shell names its script and style sheet');
  let onWire = 0, decoded = 0;
  for (const path of [script, style]) {
    const raw = await rawGet(path, { 'Accept-Encoding': 'gzip, deflate, br' });
    expect(raw.status === 200, `${path} is served (got ${raw.status})`);
    expect(raw.headers['content-encoding'] === 'gzip', `${path} comes gzip-compressed (got ${raw.headers['content-encoding']})`);
    expect(/accept-encoding/i.test(raw.headers.vary || ''), `${path} says Vary: Accept-Encoding`);
    const body = gunzipSync(raw.body);
    const identity = await rawGet(path, {});
    expect(body.equals(identity.body), `${path} decompresses to the very bytes served uncompressed`);
    expect(raw.headers.etag !== identity.headers.etag, `${path} has an ETag of its own when compressed`);
    onWire += raw.body.length;
    decoded += body.length;
  }
  const refused = await rawGet(script, { 'Accept-Encoding': 'gzip;q=0' });
  expect(!refused.headers['content-encoding'], 'gzip;q=0 is honoured');
  console.log(`  # script + style sheet on the wire: ${(onWire / 1024).toFixed(1)} KiB gzipped, ${(decoded / 1024).toFixed(1)} KiB uncompressed`);
}

// ---------- main ----------

const VIEWPORTS = [
  { name: 'phone', size: { width: 375, height: 812 }, mobile: true },
  { name: 'desktop', size: { width: 1280, height: 800 }, mobile: false },
];

async function main() {
  console.log(`browser tests against ${BASE}, screenshots in ${OUT}`);
  try {
    const res = await fetch(BASE + '/healthz');
    if (!res.ok) throw new Error('status ' + res.status);
  } catch (e) {
    console.log(`not ok 1 - the system answers at ${BASE} (${e.message})`);
    console.log('0 passed, 1 failed, 0 skipped');
    process.exit(1);
  }
  const profile = mkdtempSync(join(tmpdir(), 'browser-tests-'));
  process.env.TMPDIR = profile; // Playwright puts its fresh --user-data-dir here
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ARGS,
    timeout: 30000,
  });
  try {
    await test('first page load: under 150 KiB of JavaScript gzipped; assets cached immutably, index.html revalidated', firstLoad);
    await test('text files go over the wire gzip-compressed to clients that take it', compressed);
    for (const viewport of VIEWPORTS) await story(browser, viewport);
    await test('no uncaught script errors in any page', () => {
      expect(pageErrors.length === 0, 'no page errors:\n' + pageErrors.join('\n'));
    });
  } finally {
    await browser.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}

const guard = setTimeout(() => {
  console.log(`not ok - the whole run took longer than ${RUN_MS} ms`);
  console.log(`${counts.passed} passed, ${counts.failed + 1} failed, ${counts.skipped} skipped`);
  process.exit(1);
}, RUN_MS);

main()
  .catch((e) => {
    counts.failed++;
    failures.push('runner');
    console.log('not ok - the runner failed: ' + ((e && e.stack) || e));
  })
  .finally(() => {
    clearTimeout(guard);
    if (failures.length) console.log('failed: ' + failures.join('; '));
    console.log(`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
    process.exit(counts.failed ? 1 : 0);
  });
