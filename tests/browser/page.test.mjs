// The on-call page (SPEC section 13) in a real headless Chromium: Debian's
// /usr/bin/chromium driven by playwright-core. It starts `bgswitch run` with
// two demo applications, enters the token, sees the status, watches a switch
// made elsewhere appear, runs a dry run, switches and sets a canary through
// the confirmations, and keeps a screenshot.
//
//   node page.test.mjs BGSWITCH_BINARY ARTIFACT_DIR
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const [binary, artifacts] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TOKEN = 'page-test-token-' + process.pid;
if (!binary || !artifacts) {
  console.error('usage: node page.test.mjs BGSWITCH_BINARY ARTIFACT_DIR');
  process.exit(2);
}
if (!existsSync(CHROMIUM)) {
  console.error(`FAIL: no Chromium at ${CHROMIUM} (deploy/setup.sh installs Debian's chromium)`);
  process.exit(1);
}
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error('FAIL: playwright-core is not installed (deploy/setup.sh runs npm ci in tests/browser)');
  process.exit(1);
}

const children = [];
const cleanup = () => { for (const c of children) c.kill('SIGTERM'); };
process.on('exit', cleanup);

// A free port below the kernel's ephemeral range (as the C++ tests' dead_port):
// one from inside it could be taken by an outgoing connection of a test running
// beside this one before bgswitch binds it.
function tryPort(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function freePort() {
  let low = 32768;
  try {
    low = parseInt(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8'), 10) || low;
  } catch { /* the usual default */ }
  for (let attempt = 0; attempt < 100; ++attempt) {
    const port = low - 3700 + Math.floor(Math.random() * 3600);
    if (await tryPort(port)) return port;
  }
  throw new Error('no free port below the ephemeral range');
}

function start(args, name) {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  child.on('exit', (code) => { if (code && code !== 143) console.error(`${name} exited ${code}:\n${out}`); });
  children.push(child);
  return child;
}

async function eventually(what, cond, ms = 10000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try { if (await cond()) return; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out: ${what}${last ? ` (${last.message})` : ''}`);
}

async function adminCall(admin, method, path, body) {
  const res = await fetch(`http://127.0.0.1:${admin}${path}`, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, doc: await res.json() };
}

// An SSE stream through the proxy, held open until the process ends.
function openStream(port) {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path: '/events', agent: false }, (res) => {
      res.on('data', () => {});
      res.on('error', () => {});
      resolve(res);
    });
    req.on('error', reject);
  });
}

const steps = [];
const step = (name) => { steps.push(name); console.log(`- ${name}`); };

// --- the proxy and its two colors -------------------------------------------------
const [bluePort, greenPort, port, admin] = [await freePort(), await freePort(), await freePort(), await freePort()];
const dir = mkdtempSync(join(tmpdir(), 'bgswitch-page-'));
start(['demo-upstream', '--color', 'blue', '--listen', `127.0.0.1:${bluePort}`], 'blue');
start(['demo-upstream', '--color', 'green', '--listen', `127.0.0.1:${greenPort}`], 'green');
const config = join(dir, 'bgswitch.yaml');
writeFileSync(config, `listen: [{address: "127.0.0.1:${port}"}]
admin: {address: "127.0.0.1:${admin}", token: "${TOKEN}"}
colors:
  blue: {upstreams: ["127.0.0.1:${bluePort}"]}
  green: {upstreams: ["127.0.0.1:${greenPort}"]}
health: {interval: 500ms}
switch: {drain_timeout: 30s}
state: {file: "${join(dir, 'state.json')}"}
log: {access: off}
`);
start(['run', '--config', config], 'bgswitch');
await eventually('bgswitch serves', async () => (await fetch(`http://127.0.0.1:${admin}/healthz`)).ok);
await eventually('both colors healthy', async () => {
  const s = (await adminCall(admin, 'GET', '/v1/status')).doc;
  return s.colors.blue.upstreams[0].healthy && s.colors.green.upstreams[0].healthy;
});

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
let failed = null;
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(e.message));

  step('the page loads with its security headers');
  const res = await page.goto(`http://127.0.0.1:${admin}/`);
  assert.equal(res.status(), 200);
  const h = res.headers();
  assert.match(h['content-security-policy'], /default-src 'self'/);
  assert.equal(h['x-frame-options'], 'DENY');
  assert.equal(h['cache-control'], 'no-store');
  for (const path of ['/v1/status', '/ui/app.js', '/nope']) {
    const r = await fetch(`http://127.0.0.1:${admin}${path}`);  // no token: 401 or 404, same headers
    assert.match(r.headers.get('content-security-policy'), /default-src 'self'/, path);
    assert.equal(r.headers.get('x-frame-options'), 'DENY', path);
    assert.equal(r.headers.get('cache-control'), 'no-store', path);
  }

  step('it asks for the token and keeps it in sessionStorage only');
  await page.getByLabel(/Bearer token/).fill(TOKEN);
  await page.getByRole('button', { name: 'Open' }).click();
  await page.locator('#active-color').filter({ hasText: 'blue' }).waitFor({ timeout: 5000 });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('bgswitch_token')), TOKEN);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.ok(!page.url().includes(TOKEN));
  await page.locator('#color-green .health.ok').waitFor();
  await page.locator('#color-blue').getByText(/probed .* ago/).waitFor();

  step('a switch made elsewhere shows within 2 s');
  const elsewhere = await adminCall(admin, 'POST', '/v1/switch', { to: 'green', reason: 'from a script' });
  assert.equal(elsewhere.status, 200);
  const seenAt = Date.now();
  await page.locator('#active-color').filter({ hasText: 'green' }).waitFor({ timeout: 2000 });
  console.log(`  shown after ${Date.now() - seenAt} ms`);
  await page.locator('#history-rows').getByText('from a script').waitFor({ timeout: 2000 });
  await page.locator('#color-blue .drain').waitFor({ timeout: 2000 });
  for (let i = 0; i < 3; ++i) await openStream(port);  // on green, for the confirmation to count
  await page.locator('#color-green .counts').getByText('3streams').waitFor({ timeout: 3000 });

  step('a dry run shows every gate result');
  await page.getByRole('button', { name: 'Dry run: blue' }).click();
  await page.locator('#result').getByText('Dry run passed').waitFor();
  await page.locator('#result li').filter({ hasText: `health 127.0.0.1:${bluePort}: ok` }).waitFor();

  step('a switch goes through its confirmation');
  await page.getByRole('button', { name: 'Switch to blue' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  const text = await page.locator('#confirm-text').textContent();
  assert.match(text, /Move all traffic from green to blue/);
  assert.match(text, /0 WebSockets and 3 streams on green will be closed in 30 s/);
  await page.getByRole('button', { name: 'Cancel' }).click();  // nothing happens
  assert.equal((await adminCall(admin, 'GET', '/v1/status')).doc.active, 'green');
  await page.getByRole('button', { name: 'Switch to blue' }).click();
  await page.locator('#confirm-ok').click();
  await page.locator('#active-color').filter({ hasText: 'blue' }).waitFor({ timeout: 5000 });
  await page.locator('#result').getByText('traffic moved green → blue').waitFor();
  assert.equal((await adminCall(admin, 'GET', '/v1/status')).doc.active, 'blue');
  await page.locator('#color-green .drain').getByText(/3 streams still open/).waitFor();

  step('the screenshot is kept');
  mkdirSync(artifacts, { recursive: true });
  const shot = join(artifacts, 'oncall-page.png');
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`  ${shot}`);

  step('a canary share through its confirmation');
  await page.getByLabel('Canary share (%)').fill('10');
  await page.getByRole('button', { name: 'Set canary' }).click();
  assert.match(await page.locator('#confirm-text').textContent(), /Send 10% of new sessions to green/);
  await page.locator('#confirm-ok').click();
  await page.locator('#canary-line').getByText('10% of new sessions go to green').waitFor({ timeout: 5000 });
  await page.locator('#color-green .tag').getByText('canary 10%').waitFor();
  assert.equal((await adminCall(admin, 'GET', '/v1/status')).doc.canary.percent, 10);

  await page.screenshot({ path: join(artifacts, 'oncall-page-canary.png'), fullPage: true });

  step('a phone-sized screen shows the same');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.locator('#active-color').filter({ hasText: 'blue' }).waitFor();
  await page.screenshot({ path: join(artifacts, 'oncall-page-phone.png'), fullPage: true });

  step('signing out forgets the token');
  await page.getByRole('button', { name: 'Sign out' }).click();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('bgswitch_token')), null);
  await page.getByLabel(/Bearer token/).waitFor();

  assert.deepEqual(problems, [], 'no script errors or CSP violations');
  await context.close();
} catch (e) {
  failed = e;
} finally {
  await browser.close();
  cleanup();
}
if (failed) {
  console.error(`FAIL after: ${steps.join(' / ')}\n${failed.stack || failed}`);
  process.exit(1);
}
console.log(`PASS: ${steps.length} steps`);
