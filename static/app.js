// The pixdrop page: takes photos by drop, picker or paste, checks them against the server's
// limits, uploads them (uploads.js), follows each job over the page's one websocket (socket.js)
// until its WebP variants are ready, and shows every file as a row (rows.js). This file holds the
// page's state and wires those parts to each other and to the document. Where pixdrop requires
// sign-in it first asks for a token (session.js), then shows the uploads the caller already has.
import { cancelJob, deleteUpload, jobStatus, myJobs, problemDetail, retryJob } from './api.js';
import { UNFINISHED, errorText, isStale, mergeEvent } from './jobs.js';
import { formatNames, limits, limitsLoaded, refusal } from './limits.js';
import { Row, view } from './rows.js';
import { authHeaders, signOut, signedIn, useToken, whoAmI } from './session.js';
import { JobSocket } from './socket.js';
import { Uploads } from './uploads.js';
import { formatBytes, listWords, plural } from './words.js';

const ANNOUNCEMENTS_KEPT = 20;
const POLL_MS = 2_000;

const $ = (id) => document.getElementById(id);
const ui = {
  card: $('card'),
  drop: $('drop'),
  who: $('who'),
  whoName: $('who-name'),
  signOut: $('sign-out'),
  signin: $('signin'),
  signinForm: $('signin-form'),
  token: $('token'),
  signinError: $('signin-error'),
  picker: $('picker'),
  limits: $('limits'),
  uploads: $('uploads'),
  files: $('files'),
  summary: $('summary'),
  clearDone: $('clear-done'),
  variantsNote: $('variants-note'),
  conn: $('conn'),
  connText: $('conn-text'),
  announcer: $('announcer'),
};

/**
 * One file the page was given. `phase` says where it is: 'rejected' (refused here), 'waiting'
 * (for an upload slot), 'uploading', 'sent' (bytes out, answer pending), 'upload-failed',
 * 'upload-cancelled', 'job' (the server has it: `job` is our view of its status), or 'gone' (the
 * server no longer knows the job).
 */
class Item {
  constructor(file, key) {
    this.key = key;
    this.file = file;
    this.name = file.name || 'unnamed';
    this.size = file.size;
    this.total = file.size;
    this.sent = 0;
    this.phase = 'waiting';
    this.reason = '';
    this.retryable = false;
    // The socket sent a snapshot since we last subscribed: it is watching this job for us.
    this.watched = false;
    // A passing remark on the last action ("too late to cancel").
    this.note = '';
    // A request about the job is in flight: its buttons wait.
    this.busy = false;
    this.jobId = null;
    this.job = null;
    // The upload's delete token, from the server's answer; kept in memory only.
    this.deleteToken = null;
    // The row asks "delete for good?".
    this.confirming = false;
    this.xhr = null;
    // An object URL of the file for the preview, revoked once the server's thumbnail replaces it.
    this.preview = null;
    this.row = null;
  }

  /** The caller owns the job (signed in), or holds its delete token. */
  get deletable() {
    return Boolean(this.jobId) && (Boolean(this.deleteToken) || signedIn());
  }

  revokePreview() {
    if (this.preview) URL.revokeObjectURL(this.preview);
    this.preview = null;
  }
}

const items = new Map();
const itemsByJob = new Map();
let nextKey = 1;

// ---- Announcements and the summary line ----

/** Screen readers hear each appended line once, politely. */
function announce(text) {
  const line = document.createElement('p');
  line.textContent = text;
  ui.announcer.append(line);
  while (ui.announcer.childElementCount > ANNOUNCEMENTS_KEPT) ui.announcer.firstElementChild.remove();
}

function render(item) {
  if (item.row) item.row.render();
}

function updateSummary() {
  const counts = { completed: 0, failed: 0, rejected: 0, working: 0 };
  for (const item of items.values()) {
    const { state } = view(item);
    if (state in counts) counts[state] += 1;
    else if (['waiting', 'uploading', 'queued', 'active', 'retrying'].includes(state)) counts.working += 1;
  }
  const parts = [plural(items.size, 'file')];
  if (counts.completed) parts.push(`${counts.completed} done`);
  if (counts.working) parts.push(`${counts.working} in progress`);
  if (counts.failed) parts.push(`${counts.failed} failed`);
  if (counts.rejected) parts.push(`${counts.rejected} not accepted`);
  ui.summary.textContent = parts.join(' · ');
  ui.clearDone.hidden = !counts.completed;
  ui.uploads.hidden = items.size === 0;
}

// ---- Adding files ----

function addFiles(files) {
  if (!files.length) return;
  // Checks need the server's limits; they are usually in long before the first drop.
  limitsLoaded.then(() => {
    for (const file of files) addFile(file);
    updateSummary();
  });
}

/** Gives `item` its row, at the end of the list. */
function show(item) {
  items.set(item.key, item);
  item.row = new Row(item, {
    cancel: () => cancel(item),
    retry: () => retry(item),
    remove: () => remove(item),
    askDelete: () => askDelete(item),
    confirmDelete: () => deleteJob(item),
    keep: () => keep(item),
  });
  ui.files.append(item.row.li);
  render(item);
}

function addFile(file) {
  const item = new Item(file, nextKey++);
  const why = refusal(file);
  if (why) {
    item.phase = 'rejected';
    item.reason = why;
  } else {
    item.preview = URL.createObjectURL(file);
  }
  show(item);
  if (why) announce(why);
  else uploads.add(item);
}

// ---- Uploads ----

const uploads = new Uploads({
  onProgress: render,
  onAccepted(item, accepted) {
    item.phase = 'job';
    item.jobId = accepted.id;
    item.deleteToken = accepted.delete_token || null;
    item.job = {
      id: accepted.id, state: accepted.state || 'queued', attempts: 0, max_attempts: 0,
      progress: 0, step: null, error: null, variants: [],
    };
    itemsByJob.set(accepted.id, item);
    render(item);
    announce(`${item.name} uploaded`);
    follow(item);
  },
  onFailed(item, reason, retryable) {
    item.reason = reason;
    item.retryable = retryable;
    render(item);
    announce(`${item.name} failed: ${reason}`);
  },
  onCancelled(item) {
    render(item);
    announce(`${item.name} upload cancelled`);
    updateSummary();
  },
  onIdle: updateSummary,
});

// ---- Jobs: what the server says, and what the buttons ask of it ----

/** Takes a job status (a snapshot, an answer, or a merged event) as our view of the job. */
function applyJob(item, status) {
  if (item.phase !== 'job' || isStale(item.job, status)) return;
  const before = item.job ? item.job.state : null;
  const job = { ...status };
  delete job.type;
  item.job = job;
  if (before !== job.state) stateChanged(item, before);
  render(item);
  updateSummary();
}

function stateChanged(item, before) {
  const { job } = item;
  if (job.state === 'completed') {
    announce(`${item.name} done: ${plural((job.variants || []).length, 'variant')}`);
    // Events carry no original dimensions; one status read fills them in.
    if (!job.original || !job.original.width) refresh(item);
  } else if (job.state === 'failed') {
    announce(`${item.name} failed: ${errorText(job)}`);
  } else if (job.state === 'cancelled') {
    announce(`${item.name} cancelled`);
  } else if (job.state === 'retrying') {
    announce(`${item.name}: attempt ${job.attempts} failed, trying again`);
  } else if (job.state === 'active' && before !== 'active') {
    announce(`${item.name} processing`);
  }
  // A finished job sends nothing more; the socket's subscriptions are limited.
  if (!UNFINISHED.has(job.state)) unfollow(item);
}

function forget(item, reason) {
  item.phase = 'gone';
  item.reason = reason || 'the server no longer knows this job (it may have expired)';
  unfollow(item);
  render(item);
  updateSummary();
  announce(`${item.name}: ${item.reason}`);
}

async function refresh(item) {
  const answer = await jobStatus(item.jobId);
  if (answer.ok && answer.body) applyJob(item, answer.body);
  else if (answer.status === 404) forget(item, problemDetail(answer.body, 404));
}

async function cancel(item) {
  if (item.phase !== 'job') {
    uploads.cancel(item);
    return;
  }
  item.busy = true;
  render(item);
  const answer = await cancelJob(item.jobId);
  item.busy = false;
  if (answer.ok && answer.body) {
    applyJob(item, answer.body);
  } else if (answer.status === 409) {
    item.note = 'Too late to cancel: it had already finished.';
    refresh(item);
  } else {
    item.note = `Could not cancel: ${problemDetail(answer.body, answer.status)}.`;
  }
  render(item);
}

async function retry(item) {
  item.note = '';
  if (item.phase === 'upload-failed' || item.phase === 'upload-cancelled') {
    item.reason = '';
    uploads.add(item);
    render(item);
    updateSummary();
    return;
  }
  if (item.phase !== 'job') return;
  item.busy = true;
  render(item);
  const answer = await retryJob(item.jobId);
  item.busy = false;
  if (answer.ok && answer.body) {
    // Queued again, whatever the answer says: a quick job may already have run and failed again
    // by the time the server read it back, and that must still count as a change.
    item.job = { ...item.job, state: 'queued', error: null, progress: 0, step: null };
    announce(`${item.name} queued again`);
    applyJob(item, answer.body);
    if (UNFINISHED.has(item.job.state)) follow(item);
  } else {
    item.note = `Could not retry: ${problemDetail(answer.body, answer.status)}.`;
    refresh(item);
  }
  render(item);
}

function askDelete(item) {
  item.confirming = true;
  item.note = '';
  render(item);
  item.row.keepButton.focus();
}

function keep(item) {
  item.confirming = false;
  render(item);
  item.row.deleteButton.focus();
}

async function deleteJob(item) {
  item.busy = true;
  render(item);
  const answer = await deleteUpload(item.jobId, item.deleteToken);
  item.busy = false;
  item.confirming = false;
  // 404: gone already (deleted elsewhere, or expired); either way there is nothing left to keep.
  if (answer.status === 204 || answer.status === 404) {
    announce(`${item.name} deleted`);
    remove(item);
    return;
  }
  item.note = `Could not delete: ${problemDetail(answer.body, answer.status)}.`;
  render(item);
}

function remove(item) {
  // Keep keyboard focus in the list rather than dropping it to the top of the page.
  const next = item.row.li.nextElementSibling || item.row.li.previousElementSibling;
  if (item.jobId) {
    unfollow(item);
    itemsByJob.delete(item.jobId);
  }
  item.revokePreview();
  item.row.li.remove();
  items.delete(item.key);
  const target = next && next.querySelector('button:not([hidden])');
  (target || ui.picker).focus();
  updateSummary();
}

ui.clearDone.addEventListener('click', () => {
  for (const item of [...items.values()]) {
    if (view(item).state === 'completed') remove(item);
  }
  ui.picker.focus();
});

// Retry countdowns tick down while a job waits out its backoff.
setInterval(() => {
  for (const item of items.values()) {
    if (item.phase === 'job' && item.job.state === 'retrying') render(item);
  }
}, 1000);

// ---- The websocket ----

// Jobs the socket refused to carry (too many subscriptions): asked about now and then instead.
const polled = new Set();

function follow(item) {
  item.watched = false;
  socket.subscribe([item.jobId]);
}

function unfollow(item) {
  polled.delete(item.jobId);
  socket.unsubscribe([item.jobId]);
}

function poll(item) {
  if (polled.has(item.jobId)) return;
  polled.add(item.jobId);
  const tick = async () => {
    if (!polled.has(item.jobId) || !items.has(item.key)) return;
    await refresh(item);
    if (item.phase === 'job' && UNFINISHED.has(item.job.state)) setTimeout(tick, POLL_MS);
    else polled.delete(item.jobId);
  };
  tick();
}

function setConnection(state, title) {
  const words = {
    connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', degraded: 'Updates paused',
  };
  ui.conn.dataset.state = state;
  ui.connText.textContent = words[state];
  ui.conn.title = title;
}

function onServerMessage(message) {
  const item = message.id ? itemsByJob.get(message.id) : null;
  if (message.type === 'snapshot' || message.type === 'event') {
    // After "unavailable", news of a job means the server has its job store back.
    if (ui.conn.dataset.state === 'degraded') setConnection('live', 'Live updates from the server');
  }
  if (message.type === 'snapshot') {
    if (item) {
      item.watched = true;
      applyJob(item, message);
    }
  } else if (message.type === 'event') {
    if (item && item.job) applyJob(item, mergeEvent(item.job, message));
  } else if (message.type === 'deleted') {
    if (item) {
      announce(`${item.name} was deleted`);
      remove(item);
    }
  } else if (message.type !== 'error') {
    // Newer servers may say more; this page ignores what it does not know.
  } else if (message.code === 'not-found' && item) {
    forget(item, message.detail);
  } else if (message.code === 'too-many-subscriptions') {
    // The whole subscription was refused: whatever the socket is not watching, ask about instead.
    for (const job of unfinishedItems()) {
      if (!job.watched) poll(job);
    }
  } else if (message.code === 'unavailable') {
    setConnection('degraded', message.detail || 'The server lost its job store; updates resume when it is back');
  } else {
    console.warn('pixdrop websocket:', message.code, message.detail);
  }
}

function unfinishedItems() {
  return [...itemsByJob.values()].filter((item) => item.phase === 'job' && UNFINISHED.has(item.job.state));
}

const socket = new JobSocket({
  // Called as a socket opens, to subscribe to them all: none is watched until its snapshot.
  unfinished: () => unfinishedItems().map((item) => {
    item.watched = false;
    return item.jobId;
  }),
  onMessage: onServerMessage,
  onState: setConnection,
});

// ---- The document: picker, paste, drag and drop ----

ui.picker.addEventListener('change', () => {
  addFiles([...ui.picker.files]);
  // Choosing the same file again must fire `change` again.
  ui.picker.value = '';
});

// Pasted screenshots are all called "image.png": give each a name one can tell apart.
function pastedName(file, index) {
  if (file.name && !/^image\.\w+$/.test(file.name)) return file;
  const stamp = new Date().toTimeString().slice(0, 8).replaceAll(':', '');
  const extension = (file.type.split('/')[1] || 'png').replace('jpeg', 'jpg');
  const suffix = index ? `-${index + 1}` : '';
  return new File([file], `pasted-${stamp}${suffix}.${extension}`, { type: file.type });
}

document.addEventListener('paste', (event) => {
  const files = [...(event.clipboardData ? event.clipboardData.files : [])];
  if (!files.length) return;
  event.preventDefault();
  addFiles(files.map(pastedName));
});

// Drops are taken anywhere on the page (a near miss must not navigate away to the file), and the
// card shows it will take them. Enter and leave fire for every child crossed: hence the count.
let dragDepth = 0;
const carriesFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes('Files');

document.addEventListener('dragenter', (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  dragDepth += 1;
  ui.card.classList.add('is-dragging');
});
document.addEventListener('dragover', (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = 'copy';
});
document.addEventListener('dragleave', (event) => {
  if (!carriesFiles(event)) return;
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) ui.card.classList.remove('is-dragging');
});
document.addEventListener('drop', (event) => {
  if (!event.dataTransfer) return;
  event.preventDefault();
  dragDepth = 0;
  ui.card.classList.remove('is-dragging');
  addFiles([...event.dataTransfer.files]);
});

// Leaving mid-upload loses the upload: ask first.
window.addEventListener('beforeunload', (event) => {
  if (uploads.busy) event.preventDefault();
});

// ---- Sign-in and the uploads the caller already has ----

/** How many of the caller's latest jobs the page shows after a reload. */
const RESTORED = 50;

/** A row for a job uploaded earlier (before a reload, or from another tab). */
function restore(job) {
  const original = job.original || {};
  const item = new Item({ name: original.filename || job.id, size: original.bytes || 0 }, nextKey++);
  item.phase = 'job';
  item.jobId = job.id;
  item.job = job;
  itemsByJob.set(job.id, item);
  show(item);
  if (UNFINISHED.has(job.state)) follow(item);
}

async function restoreUploads() {
  const { ok, body } = await myJobs(RESTORED);
  if (!ok || !body || !Array.isArray(body.jobs)) return;
  // Oldest first, as uploads are added: the newest ends up last, where a new one would go.
  for (const job of [...body.jobs].reverse()) {
    if (!itemsByJob.has(job.id)) restore(job);
  }
  updateSummary();
}

function showSignIn(reason) {
  ui.signin.hidden = false;
  ui.drop.hidden = true;
  ui.who.hidden = true;
  ui.signinError.textContent = reason || '';
  ui.token.focus();
}

/** Asks who the page is signed in as, and shows the page for them (or the sign-in step). */
async function start() {
  const { status, body } = await whoAmI();
  if (status === 401) {
    // A token the server refuses (revoked, expired) is dropped, and the reason shown.
    const hadToken = Object.keys(authHeaders()).length > 0;
    if (hadToken) signOut();
    showSignIn(hadToken ? problemDetail(body, status) : '');
    return;
  }
  ui.signin.hidden = true;
  ui.drop.hidden = false;
  if (body && body.subject) {
    ui.whoName.textContent = body.subject;
    ui.who.hidden = false;
    await restoreUploads();
  }
  socket.connect();
}

ui.signinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = ui.token.value.trim();
  if (!token) return;
  useToken(token);
  ui.token.value = '';
  start();
});

ui.signOut.addEventListener('click', () => {
  signOut();
  // Nothing of the last caller stays on screen or on the socket.
  location.reload();
});

// ---- Start ----

limitsLoaded.then(() => {
  if (formatNames().length) {
    ui.limits.textContent = `${listWords(formatNames(), 'or')}, up to ${formatBytes(limits.max_file_bytes)} each`;
  }
  if (limits.variants.length) {
    const sizes = limits.variants.map((v) => `${v.name} (up to ${v.max_width}×${v.max_height})`);
    ui.variantsNote.textContent = `Each photo becomes WebP: ${listWords(sizes, 'and')}.`;
  }
});
start();
