// The admin dashboard. Every figure comes from the admin API, read every few seconds: the queue's
// counts (kept in Redis, so they are the whole queue's, whichever instance answers), instances
// and repeating tasks, failed jobs. Job events arrive live from `GET /admin/events`, read with
// fetch so the credential travels as a header. The chart keeps the samples this page took: the
// depths, and jobs finished per minute from the change in the queue's finished totals.
// Everything the server sends is written with textContent, never parsed as HTML.
import { parseJson, problemDetail, request } from './api.js';
import { authHeaders, signOut, useToken } from './session.js';

const REFRESH_MS = 2_000;
/** Ten minutes of samples. */
const SAMPLES = 300;
const RECENT = 30;
/** Throughput is averaged over this much of the past, so one job's end is not a spike. */
const RATE_WINDOW_MS = 30_000;
const FAILED_PAGE = 20;

const $ = (id) => document.getElementById(id);
const ui = {
  live: $('live'), liveText: $('live-text'), signin: $('signin'), signinWhy: $('signin-why'),
  signinForm: $('signin-form'), token: $('token'), board: $('board'), pause: $('pause'),
  pausedNote: $('paused-note'), chart: $('chart'), chartSpan: $('chart-span'),
  instances: $('instances'), noInstances: $('no-instances'), tasks: $('tasks'),
  failed: $('failed'), noFailed: $('no-failed'), retryAll: $('retry-all'), recent: $('recent'),
  noRecent: $('no-recent'), status: $('status'),
};

const samples = [];
/** Job id → its latest event, newest first when shown. */
const recent = new Map();
let paused = false;
let streamAbort = null;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function say(text) {
  ui.status.textContent = text;
}

function ago(ms) {
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return new Date(ms).toLocaleString();
}

/** Shows the sign-in form instead of the board, saying why. */
function refused(answer) {
  stopStream();
  ui.board.hidden = true;
  ui.signin.hidden = false;
  ui.signinWhy.textContent = problemDetail(answer.body, answer.status);
  setLive('reconnecting', 'Not signed in as an administrator');
}

function setLive(state, text) {
  ui.live.dataset.state = state;
  ui.liveText.textContent = text;
}

// The queue: tiles, pause state, repeating tasks, one chart sample.

async function refreshQueue({ sample = false } = {}) {
  const answer = await request('GET', '/admin/queue');
  if (answer.status === 401 || answer.status === 403) return refused(answer);
  if (!answer.ok || !answer.body) {
    say(`Could not read the queue: ${problemDetail(answer.body, answer.status)}`);
    return;
  }
  ui.signin.hidden = true;
  ui.board.hidden = false;
  const q = answer.body;
  $('n-waiting').textContent = q.waiting;
  $('n-waiting-high').textContent = q.waiting_high ? `${q.waiting_high} high priority` : '';
  $('n-active').textContent = q.active;
  $('n-retrying').textContent = q.retrying;
  $('n-completed').textContent = q.completed;
  $('n-failed').textContent = q.failed;
  $('n-workers').textContent = `of ${q.workers} slots`;
  paused = Boolean(q.paused);
  ui.pause.textContent = paused ? 'Resume' : 'Pause';
  ui.pausedNote.hidden = !paused;
  ui.tasks.replaceChildren(...(q.repeating || []).map((task) => {
    const tr = el('tr');
    tr.append(el('td', 'id', task.name), el('td', '', task.runs),
      el('td', '', task.last_run ? ago(task.last_run) : 'never'), el('td', 'id', task.last_runner || ''));
    return tr;
  }));
  // Samples are taken on the timer only, evenly spaced; refreshes after a click just show.
  if (sample || samples.length === 0) {
    const finished = q.finished_total || {};
    samples.push({
      at: Date.now(), waiting: q.waiting, active: q.active,
      finished: (finished.completed || 0) + (finished.failed || 0) + (finished.cancelled || 0),
    });
    if (samples.length > SAMPLES) samples.shift();
    drawChart();
  }
  if (!streamAbort) openStream();
}

function drawChart() {
  const svg = ui.chart;
  const [width, height, left, top, bottom] = [900, 170, 34, 8, 18];
  const ns = 'http://www.w3.org/2000/svg';
  const node = (tag, attrs, text) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = text;
    return n;
  };
  // Finished per minute, from the oldest sample within the window before each one.
  let from = 0;
  const rates = samples.map((s) => {
    while (s.at - samples[from].at > RATE_WINDOW_MS) from += 1;
    const minutes = (s.at - samples[from].at) / 60_000;
    return minutes > 0 ? Math.max(0, s.finished - samples[from].finished) / minutes : 0;
  });
  const top_ = Math.max(4, ...samples.map((s) => Math.max(s.waiting, s.active)), ...rates);
  const scale = niceCeiling(top_);
  const span = samples.length > 1 ? samples[samples.length - 1].at - samples[0].at : 0;
  const x = (i) => left + (samples.length > 1 ? (i / (samples.length - 1)) * (width - left - 4) : 0);
  const y = (v) => top + (1 - v / scale) * (height - top - bottom);
  const children = [];
  for (const fraction of [0, 0.5, 1]) {
    const value = scale * fraction;
    children.push(node('line', { class: 'grid-line', x1: left, x2: width, y1: y(value), y2: y(value) }));
    children.push(node('text', { class: 'axis-label', x: 2, y: y(value) + 4 }, formatCount(value)));
  }
  const line = (values, cls) => node('polyline', {
    class: cls, points: values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' '),
  });
  if (samples.length > 1) {
    children.push(line(samples.map((s) => s.waiting), 'line-waiting'));
    children.push(line(samples.map((s) => s.active), 'line-active'));
    children.push(line(rates, 'line-done'));
  }
  svg.replaceChildren(...children);
  svg.dataset.samples = String(samples.length);
  ui.chartSpan.textContent = span < 60_000 ? `${Math.round(span / 1000)} s` : `${Math.round(span / 60_000)} min`;
}

function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function formatCount(value) {
  return value >= 1000 ? `${(value / 1000).toFixed(value >= 10_000 ? 0 : 1)}k` : String(Math.round(value));
}

// Instances and their workers.

async function refreshInstances() {
  const answer = await request('GET', '/admin/instances');
  if (!answer.ok || !answer.body) return;
  const instances = answer.body.instances || [];
  ui.noInstances.hidden = instances.length > 0;
  // The autoscaled pools' sizes, from each live instance's last heartbeat.
  $('n-running').textContent = instances
    .filter((instance) => instance.alive)
    .reduce((sum, instance) => sum + (instance.running ?? instance.workers.length), 0);
  ui.instances.replaceChildren(...instances.map((instance) => {
    const tr = el('tr');
    const busy = instance.workers.filter((w) => w.holding > 0).length;
    const beat = instance.alive
      ? `alive, ${instance.last_beat_ms ? ago(instance.last_beat_ms) : 'just now'}`
      : 'lapsed: its jobs go back to the queue';
    const running = instance.running ?? instance.workers.length;
    tr.append(el('td', 'id', instance.name), el('td', instance.alive ? '' : 'dead', beat),
      el('td', '', `${busy} / ${running} / ${instance.workers.length}`));
    return tr;
  }));
}

// Failed jobs, with retry and delete.

async function refreshFailed() {
  const answer = await request('GET', `/admin/jobs?state=failed&limit=${FAILED_PAGE}`);
  if (!answer.ok || !answer.body) return;
  const jobs = answer.body.jobs || [];
  ui.noFailed.hidden = jobs.length > 0;
  ui.retryAll.disabled = jobs.length === 0;
  ui.failed.replaceChildren(...jobs.map(failedRow));
}

function failedRow(job) {
  const tr = el('tr');
  tr.dataset.id = job.id;
  const name = job.original && job.original.filename ? job.original.filename : '';
  const who = el('td');
  who.append(el('div', 'id', job.id));
  if (name) who.append(el('div', 'detail', name));
  if (job.subject) who.append(el('div', 'detail', `by ${job.subject}`));
  const error = el('td');
  error.append(el('div', 'code', job.error ? job.error.code : ''));
  error.append(el('div', 'detail', job.error ? job.error.detail : ''));
  const when = el('td', '', job.updated_at ? new Date(job.updated_at).toLocaleString() : '');
  const actions = el('td', 'actions');
  const retry = el('button', 'btn retry', 'Retry');
  retry.type = 'button';
  retry.addEventListener('click', () => act('POST', `/admin/jobs/${encodeURIComponent(job.id)}/retry`, 'Queued again'));
  const remove = el('button', 'btn btn-danger delete', 'Delete');
  remove.type = 'button';
  remove.addEventListener('click', () => {
    // A second click confirms: deletion removes the job's files too.
    if (remove.dataset.armed !== 'yes') {
      remove.dataset.armed = 'yes';
      remove.textContent = 'Delete for good?';
      return;
    }
    act('DELETE', `/admin/jobs/${encodeURIComponent(job.id)}`, 'Deleted');
  });
  actions.append(retry, remove);
  tr.append(who, error, when, actions);
  return tr;
}

async function act(method, url, done) {
  const answer = await request(method, url);
  if (answer.status === 401 || answer.status === 403) return refused(answer);
  say(answer.ok ? done : problemDetail(answer.body, answer.status));
  await Promise.all([refreshQueue(), refreshFailed()]);
}

// Live events.

function stopStream() {
  if (streamAbort) streamAbort.abort();
  streamAbort = null;
}

async function openStream() {
  const controller = new AbortController();
  streamAbort = controller;
  try {
    const response = await fetch('/admin/events', {
      headers: { Accept: 'application/x-ndjson', ...authHeaders() }, signal: controller.signal,
    });
    if (response.status === 401 || response.status === 403) {
      refused({ status: response.status, body: parseJson(await response.text()) });
      return;
    }
    if (!response.ok || !response.body) throw new Error(`status ${response.status}`);
    setLive('live', 'Live job events');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const message = parseJson(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        if (message) onMessage(message);
      }
    }
  } catch {
    if (controller.signal.aborted) return;
  }
  if (streamAbort !== controller) return;
  streamAbort = null;
  setLive('reconnecting', 'Reconnecting…');
  setTimeout(() => { if (!streamAbort) openStream(); }, REFRESH_MS);
}

let failedSoon = null;

function onMessage(message) {
  if (message.type === 'resync') {
    refreshQueue();
    refreshFailed();
    return;
  }
  if (message.type === 'event') {
    recent.delete(message.id);
    recent.set(message.id, message);
    if (message.state === 'failed' || message.state === 'queued') {
      clearTimeout(failedSoon);
      failedSoon = setTimeout(refreshFailed, 300);
    }
  } else if (message.type === 'deleted') {
    const known = recent.get(message.id);
    recent.delete(message.id);
    recent.set(message.id, { ...(known || { id: message.id }), state: 'deleted', updated_at: Date.now() });
    ui.failed.querySelector(`tr[data-id="${CSS.escape(message.id)}"]`)?.remove();
  } else {
    return;
  }
  while (recent.size > RECENT) recent.delete(recent.keys().next().value);
  drawRecent();
}

function drawRecent() {
  const rows = [...recent.values()].reverse().map((job) => {
    const tr = el('tr');
    tr.dataset.id = job.id;
    tr.dataset.state = job.state;
    const state = el('td', `state-${job.state}`, job.state);
    if (job.error) state.append(el('div', 'detail', `${job.error.code}: ${job.error.detail}`));
    tr.append(el('td', 'id', job.id), state,
      el('td', '', job.progress !== undefined ? `${job.progress}%` : ''),
      el('td', '', job.attempts !== undefined ? `${job.attempts} of ${job.max_attempts}` : ''),
      el('td', '', job.updated_at ? new Date(job.updated_at).toLocaleTimeString() : ''));
    return tr;
  });
  ui.noRecent.hidden = rows.length > 0;
  ui.recent.replaceChildren(...rows);
}

// Wiring.

ui.pause.addEventListener('click', () => act('POST', paused ? '/admin/resume' : '/admin/pause',
  paused ? 'Resumed' : 'Paused'));
ui.retryAll.addEventListener('click', () => act('POST', '/admin/jobs/retry-failed', 'Failed jobs queued again'));
ui.signinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const value = ui.token.value.trim();
  if (!value) return;
  signOut();
  useToken(value);
  ui.token.value = '';
  refreshAll();
});

async function refreshAll() {
  await refreshQueue();
  if (ui.board.hidden) return;
  await Promise.all([refreshInstances(), refreshFailed()]);
}

refreshAll();
setInterval(() => {
  if (document.hidden) return;
  refreshQueue({ sample: true });
  refreshInstances();
}, REFRESH_MS);
