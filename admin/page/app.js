// The on-call page (SPEC section 13). Plain JavaScript, no framework, no
// build step: it asks for the admin token, keeps it in this tab's
// sessionStorage only, and polls the JSON API once a second. Everything it
// shows is set as text, never as markup.
'use strict';

const TOKEN_KEY = 'bgswitch_token';
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

let token = sessionStorage.getItem(TOKEN_KEY);
let status = null;   // the last GET /v1/status
let busy = false;    // an action is on its way
let ticks = 0;
let timer = null;

// --- the API -----------------------------------------------------------------

async function api(method, path, body) {
  const init = { method, cache: 'no-store', headers: { Authorization: 'Bearer ' + token } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let doc = null;
  try { doc = await res.json(); } catch (e) { doc = null; }
  if (res.status === 401) {
    signOut('The proxy refused this token.');
    throw new Error('unauthorized');
  }
  return { status: res.status, doc: doc || {} };
}

// --- small DOM helpers ---------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === 'class') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

const other = (c) => (c === 'blue' ? 'green' : 'blue');
const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
const seconds = (ms) => (ms >= 10000 ? `${Math.round(ms / 1000)} s` : `${(ms / 1000).toFixed(1)} s`);
const localTime = (iso) => (iso ? new Date(iso).toLocaleString() : '');

// --- signing in and out --------------------------------------------------------

function signOut(message) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(timer);
  $('board').hidden = true;
  $('signout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('conn').textContent = '';
  $('token').focus();
}

function signIn(t) {
  token = t;
  sessionStorage.setItem(TOKEN_KEY, t);
  $('login').hidden = true;
  $('board').hidden = false;
  $('signout').hidden = false;
  poll();
}

// --- polling -------------------------------------------------------------------

async function poll() {
  clearTimeout(timer);
  try {
    const s = await api('GET', '/v1/status');
    if (s.status !== 200) throw new Error(s.doc.error || `status ${s.status}`);
    status = s.doc;
    const h = await api('GET', '/v1/history');
    renderStatus(status);
    if (h.status === 200) renderHistory(h.doc.events || []);
    if (status.fleet && ticks % 2 === 0) {
      const f = await api('GET', '/v1/fleet');
      renderFleet(f.status === 200 ? f.doc : null, f.doc.error);
    }
    $('fleet').hidden = !status.fleet;
    $('conn').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (!token) return;
    $('conn').textContent = `cannot reach the proxy: ${e.message}`;
  }
  ticks++;
  if (token) timer = setTimeout(poll, POLL_MS);
}

// --- rendering -----------------------------------------------------------------

function renderStatus(s) {
  const active = s.active;
  const banner = $('active');
  banner.className = `active is-${active}`;
  $('active-color').textContent = active;
  const parts = [`version ${s.version}`, s.state];
  if (s.previous) parts.push(`previous ${s.previous}`);
  if (s.backend && s.backend !== 'file') parts.push(`fleet backend ${s.backend}`);
  $('active-meta').textContent = parts.join(' · ');

  const canary = $('canary-line');
  canary.hidden = !s.canary;
  if (s.canary) {
    canary.textContent = `Canary: ${s.canary.percent}% of new sessions go to ${s.canary.to} ` +
      `(since ${localTime(s.canary.since)})`;
  }

  for (const color of ['blue', 'green']) renderColor(color, s);
  renderObservation(s.observation, s.last_observation);

  const idle = other(active);
  $('dry-run').textContent = `Dry run: ${idle}`;
  $('switch').textContent = `Switch to ${idle}`;
  $('rollback').textContent = s.canary ? 'End canary' : s.previous ? `Roll back to ${s.previous}` : 'Roll back';
  $('rollback').disabled = busy || (!s.previous && !s.canary);
  $('switch').disabled = busy || s.state === 'switching';
  $('dry-run').disabled = busy;
  $('canary-set').disabled = busy;
}

function renderColor(color, s) {
  const c = s.colors[color];
  const card = $(`color-${color}`);
  const live = s.active === color;
  const tag = live ? el('span', { class: 'tag live' }, 'live')
    : s.canary && s.canary.to === color ? el('span', { class: 'tag' }, `canary ${s.canary.percent}%`)
      : el('span', { class: 'tag' }, 'idle');
  const kids = [el('h2', {}, color, tag)];
  kids.push(el('div', { class: 'counts' },
    el('div', {}, el('strong', {}, c.in_flight), el('span', {}, 'in flight')),
    el('div', {}, el('strong', {}, c.upgraded), el('span', {}, 'WebSockets')),
    el('div', {}, el('strong', {}, c.streams), el('span', {}, 'streams'))));
  if (c.draining) {
    const left = Math.max(0, Date.parse(c.draining.deadline) - Date.now());
    kids.push(el('div', { class: 'drain', role: 'timer' },
      `Draining: ${seconds(left)} left; ${plural(c.upgraded, 'WebSocket', 'WebSockets')} and ` +
      `${plural(c.streams, 'stream', 'streams')} still open`));
  }
  const list = el('ul', { class: 'ups' });
  for (const u of c.upstreams) {
    list.append(el('li', {},
      el('span', { class: 'addr' }, u.address),
      el('span', { class: u.healthy ? 'health ok' : 'health down' }, u.healthy ? 'healthy' : 'DOWN'),
      el('span', { class: 'age' }, u.probe_age_ms === null ? 'not probed yet' : `probed ${seconds(u.probe_age_ms)} ago`)));
  }
  if (c.upstreams.length === 0) list.append(el('li', {}, 'no upstreams'));
  kids.push(list);
  card.className = `color-card ${color}`;
  card.replaceChildren(...kids);
}

function figures(o) {
  const p99 = o.p99_ms === null ? 'no timed request' : `p99 ${o.p99_ms} ms`;
  return `${o.requests} requests, ${o.errors} 5xx (ratio ${Number(o.error_ratio).toFixed(3)}), ${p99}`;
}

function renderObservation(now, last) {
  const body = $('observation-body');
  if (now) {
    const what = now.canary ? `the canary's share on ${now.color}` : now.color;
    body.textContent = `Watching ${what}: ${now.verdict.toUpperCase()} — ${figures(now)}; ` +
      `until ${localTime(now.ends_at)}${now.note ? `; ${now.note}` : ''}`;
  } else if (last) {
    body.textContent = `None running. Last: ${last.color} ended ${last.result} — ${figures(last)}`;
  } else {
    body.textContent = 'None running.';
  }
}

function renderHistory(events) {
  const rows = events.slice(0, 10).map((e) => {
    let reason = e.reason || '';
    if (e.failure) reason += (reason ? '; ' : '') + e.failure;
    if (e.percent !== undefined) reason += (reason ? '; ' : '') + `canary ${e.percent}%`;
    const bad = /failed|refused/.test(e.result) || e.action === 'auto_rollback';
    return el('tr', {},
      el('td', {}, localTime(e.time)),
      el('td', {}, e.action + (e.dry_run ? ' (dry run)' : '')),
      el('td', {}, `${e.from} → ${e.to}`),
      el('td', bad ? { class: 'res-bad' } : {}, e.result),
      el('td', {}, reason),
      el('td', {}, e.node ? `${e.source} @ ${e.node}` : e.source));
  });
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: '6' }, 'No switches yet.')));
  $('history-rows').replaceChildren(...rows);
}

function renderFleet(doc, error) {
  if (!doc) {
    $('fleet-rows').replaceChildren(el('tr', {}, el('td', { colspan: '5' }, `Fleet unknown: ${error || 'no answer'}`)));
    return;
  }
  $('fleet-rows').replaceChildren(...doc.nodes.map((n) => el('tr', {},
    el('td', {}, n.node + (n.node === doc.node ? ' (this one)' : '')),
    el('td', {}, n.active),
    el('td', n.applied_version < doc.version ? { class: 'res-bad' } : {}, `${n.applied_version} of ${doc.version}`),
    el('td', {}, `${seconds(n.heartbeat_age_ms)} ago`),
    el('td', n.live ? {} : { class: 'res-bad' }, n.live ? 'yes' : 'NO'))));
}

// --- actions -------------------------------------------------------------------

function confirmAction(title, text, ok) {
  const dialog = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  return new Promise((resolve) => {
    const done = (answer) => {
      $('confirm-ok').onclick = $('confirm-cancel').onclick = dialog.oncancel = null;
      dialog.close();
      resolve(answer);
    };
    $('confirm-ok').onclick = () => done(true);
    $('confirm-cancel').onclick = () => done(false);
    dialog.oncancel = (ev) => { ev.preventDefault(); done(false); };
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}

function showResult(ok, text, gates) {
  const box = $('result');
  box.className = `result ${ok ? 'ok' : 'bad'}`;
  const kids = [text];
  if (gates) {
    const list = el('ul', {});
    for (const u of gates.health.upstreams) {
      list.append(el('li', {}, `health ${u.upstream}: ${u.healthy ? 'ok' : 'FAIL'}` +
        (u.status ? ` (${u.status})` : '') + (u.error ? ` — ${u.error}` : '') + `, ${(u.latency_us / 1000).toFixed(1)} ms`));
    }
    for (const c of gates.smoke.checks) {
      list.append(el('li', {}, `smoke ${c.check} on ${c.upstream}: ${c.passed ? 'ok' : 'FAIL'}` +
        (c.status ? ` (${c.status})` : '') + (c.error ? ` — ${c.error}` : '')));
    }
    if (!gates.smoke.ran) list.append(el('li', {}, 'smoke checks: not run'));
    kids.push(list);
  }
  box.replaceChildren(...kids);
}

function describeAnswer(r, what) {
  const d = r.doc;
  if (r.status === 200) {
    switch (d.result) {
      case 'switched': return `${what}: traffic moved ${d.from} → ${d.to} (version ${d.version})`;
      case 'dry_run_passed': return `Dry run passed: ${d.to} would take traffic`;
      case 'canary': return `Canary: ${d.percent}% of new sessions go to ${d.to} (version ${d.version})`;
      case 'canary_ended': return `Canary ended: every session on ${d.to} (version ${d.version})`;
      case 'no_canary': return 'No canary was running';
      case 'already_active': return `${d.to} is already active`;
      default: return `${what}: ${d.result}`;
    }
  }
  return `${what} refused (${r.status}): ${d.error || 'no reason given'}` +
    (d.detail ? ` — ${d.detail}` : '') + (d.gates && !d.gates.passed ? ' — a gate failed' : '');
}

async function act(what, method, path, body) {
  busy = true;
  if (status) renderStatus(status);
  showResult(true, `${what}: running…`);
  try {
    const r = await api(method, path, body);
    showResult(r.status === 200, describeAnswer(r, what), r.doc.gates);
  } catch (e) {
    if (token) showResult(false, `${what} failed: ${e.message}`);
  }
  busy = false;
  poll();
}

function drainText(color) {
  const c = status.colors[color];
  const ms = status.switch ? status.switch.drain_timeout_ms : 0;
  return `${plural(c.upgraded, 'WebSocket', 'WebSockets')} and ${plural(c.streams, 'stream', 'streams')} ` +
    `on ${color} will be closed in ${seconds(ms)}.`;
}

async function onSwitch() {
  if (!status) return;
  const from = status.active;
  const to = other(from);
  let text = `Move all traffic from ${from} to ${to} once ${to}'s health and smoke checks pass. ${drainText(from)}`;
  if (status.canary) text += ` This completes the canary at ${status.canary.percent}%.`;
  if (await confirmAction(`Switch to ${to}`, text, `Switch to ${to}`)) {
    act('Switch', 'POST', '/v1/switch', { to, reason: 'on-call page' });
  }
}

async function onRollback() {
  if (!status) return;
  if (status.canary) {
    const c = status.canary.to;
    const text = `End the canary: every session on ${c} goes back to ${status.active}; no color switch. ${drainText(c)}`;
    if (await confirmAction('End the canary', text, 'End canary')) {
      act('Rollback', 'POST', '/v1/rollback', { reason: 'on-call page' });
    }
    return;
  }
  const from = status.active;
  const to = status.previous;
  const text = `Move all traffic from ${from} back to ${to} once ${to}'s health and smoke checks pass. ${drainText(from)}`;
  if (await confirmAction(`Roll back to ${to}`, text, `Roll back to ${to}`)) {
    act('Rollback', 'POST', '/v1/rollback', { reason: 'on-call page' });
  }
}

async function onCanary(ev) {
  ev.preventDefault();
  if (!status) return;
  const percent = Number($('canary-percent').value);
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) {
    showResult(false, 'The canary share is a whole number from 0 to 100.');
    return;
  }
  const to = other(status.active);
  let title = `Canary ${percent}% to ${to}`;
  let text = `Send ${percent}% of new sessions to ${to} once its health and smoke checks pass. ` +
    `Sessions already on ${to} stay there; everyone else stays on ${status.active}.`;
  if (percent === 0) {
    title = 'End the canary';
    text = status.canary ? `Every session on ${to} goes back to ${status.active}. ${drainText(to)}` : 'No canary is running.';
  }
  if (await confirmAction(title, text, percent === 0 ? 'End canary' : 'Set canary')) {
    act('Canary', 'POST', '/v1/canary', percent === 0 ? { percent: 0, reason: 'on-call page' }
      : { to, percent, reason: 'on-call page' });
  }
}

function onDryRun() {
  if (!status) return;
  act('Dry run', 'POST', '/v1/switch', { to: other(status.active), dry_run: true, reason: 'on-call page' });
}

// --- start -----------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('token').value.trim();
    $('token').value = '';
    if (t) signIn(t);
  });
  $('signout').addEventListener('click', () => signOut(''));
  $('switch').addEventListener('click', onSwitch);
  $('rollback').addEventListener('click', onRollback);
  $('dry-run').addEventListener('click', onDryRun);
  $('canary-form').addEventListener('submit', onCanary);
  if (token) signIn(token);
  else signOut('');
});
