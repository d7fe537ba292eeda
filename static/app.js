// The pixdrop page's behaviour: takes photos by drop, picker or paste, checks them against the
// server's limits, uploads each with its own XMLHttpRequest (fetch cannot report upload progress),
// then follows its job over the page's one websocket until its WebP variants are ready.
'use strict';

(() => {
  // A few uploads at once keep the pipe full without starving each other of bandwidth.
  const PARALLEL_UPLOADS = 3;
  const RECONNECT_MIN_MS = 500;
  const RECONNECT_MAX_MS = 10_000;
  // A socket that closes sooner than this after opening did not really recover: keep backing off.
  const STABLE_SOCKET_MS = 5_000;
  const POLL_MS = 2_000;
  const ANNOUNCEMENTS_KEPT = 20;
  const UNFINISHED = new Set(['queued', 'active', 'retrying']);
  const FORMAT_NAMES = {
    jpeg: 'JPEG', png: 'PNG', gif: 'GIF', webp: 'WebP', bmp: 'BMP', tiff: 'TIFF',
  };

  // The server's defaults, in force until GET /limits answers (or if it never does).
  let limits = {
    max_file_bytes: 52_428_800,
    max_files: 20,
    max_body_bytes: 209_715_200,
    formats: ['jpeg', 'png', 'gif', 'webp', 'bmp', 'tiff'],
    mime_types: ['image/jpeg', 'image/png', 'image/gif', 'image/webp', 'image/bmp', 'image/tiff'],
    extensions: ['jpg', 'jpeg', 'png', 'gif', 'webp', 'bmp', 'tif', 'tiff'],
    variants: [],
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
    card: $('card'),
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
   * Every photo the page knows, in the order added. An item's `phase` says where it is:
   * 'rejected' (refused here), 'waiting' (for an upload slot), 'uploading', 'sent' (bytes gone,
   * answer pending), 'upload-failed', 'upload-cancelled', 'job' (the server has it: `job` is our
   * view of its JobStatus), or 'gone' (the server no longer knows the job).
   */
  const items = new Map();
  const itemsByJob = new Map();
  const uploadQueue = [];
  let uploadsRunning = 0;
  let nextKey = 1;

  // ---- Words and numbers ----

  function formatBytes(n) {
    if (!Number.isFinite(n)) return '';
    if (n < 1024) return `${n} B`;
    const units = ['KB', 'MB', 'GB'];
    let value = n / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    const digits = value < 10 && !Number.isInteger(value) ? 1 : 0;
    return `${value.toFixed(digits)} ${units[unit]}`;
  }

  function formatNames() {
    return limits.formats.map((f) => FORMAT_NAMES[f] || f.toUpperCase());
  }

  function listWords(words, last) {
    if (words.length < 2) return words.join('');
    return `${words.slice(0, -1).join(', ')} ${last} ${words[words.length - 1]}`;
  }

  function extensionOf(name) {
    const dot = name.lastIndexOf('.');
    return dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? '' : 's'}`;
  }

  // ---- Limits ----

  const limitsReady = fetch('/limits', { headers: { Accept: 'application/json' } })
    .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
    .then((loaded) => {
      limits = { ...limits, ...loaded };
    })
    .catch(() => {
      // The defaults above match the server's; the server checks every upload anyway.
    })
    .then(describeLimits);

  function describeLimits() {
    ui.limits.textContent =
      `${listWords(formatNames(), 'or')}, up to ${formatBytes(limits.max_file_bytes)} each`;
    ui.picker.accept = ['image/*', ...limits.extensions.map((e) => `.${e}`)].join(',');
    if (limits.variants && limits.variants.length) {
      const sizes = limits.variants.map((v) => `${v.name} (up to ${v.max_width}×${v.max_height})`);
      ui.variantsNote.textContent = `Each photo becomes WebP: ${listWords(sizes, 'and')}.`;
    }
  }

  /** Why this file cannot be sent, in words, or null when it may be (the server decides). */
  function refusal(file) {
    const name = file.name || 'The file';
    const typeOk = limits.mime_types.includes(file.type);
    const extensionOk = limits.extensions.includes(extensionOf(file.name || ''));
    if (!typeOk && !extensionOk) {
      return `${name} is not an image pixdrop accepts (${formatNames().join(', ')})`;
    }
    if (file.size > limits.max_file_bytes) {
      return `${name} is ${formatBytes(file.size)}; the limit is ${formatBytes(limits.max_file_bytes)}`;
    }
    if (file.size === 0) return `${name} is empty`;
    return null;
  }

  // ---- Adding files ----

  function addFiles(files) {
    if (!files.length) return;
    limitsReady.then(() => {
      for (const file of files) addFile(file);
      pumpUploads();
      updateSummary();
    });
  }

  function addFile(file) {
    const item = {
      key: nextKey++,
      file,
      name: file.name || 'unnamed',
      size: file.size,
      phase: 'waiting',
      sent: 0,
      total: file.size,
      reason: '',
      retryable: false,
      note: '',
      busy: false,
      job: null,
      jobId: null,
      xhr: null,
      preview: null,
      thumbShown: null,
      row: null,
    };
    const why = refusal(file);
    if (why) {
      item.phase = 'rejected';
      item.reason = why;
    } else {
      item.preview = URL.createObjectURL(file);
      uploadQueue.push(item);
    }
    items.set(item.key, item);
    item.row = buildRow(item);
    ui.files.append(item.row.li);
    ui.uploads.hidden = false;
    render(item);
    if (why) announce(why);
  }

  // Pasted screenshots are all called "image.png": give each a name one can tell apart.
  function pastedName(file, index) {
    if (file.name && !/^image\.\w+$/.test(file.name)) return file;
    const stamp = new Date().toTimeString().slice(0, 8).replaceAll(':', '');
    const extension = (file.type.split('/')[1] || 'png').replace('jpeg', 'jpg');
    const suffix = index ? `-${index + 1}` : '';
    return new File([file], `pasted-${stamp}${suffix}.${extension}`, { type: file.type });
  }

  ui.picker.addEventListener('change', () => {
    addFiles([...ui.picker.files]);
    // Choosing the same file again must fire `change` again.
    ui.picker.value = '';
  });

  document.addEventListener('paste', (event) => {
    const files = [...(event.clipboardData ? event.clipboardData.files : [])];
    if (!files.length) return;
    event.preventDefault();
    addFiles(files.map(pastedName));
  });

  // Drops are taken anywhere on the page (a near miss must not navigate to the file); the card
  // shows it will take them. Enter/leave fire for every child crossed, hence the depth count.
  let dragDepth = 0;
  const carriesFiles = (event) =>
    event.dataTransfer && [...event.dataTransfer.types].includes('Files');

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

  // ---- Uploads ----

  function pumpUploads() {
    while (uploadsRunning < PARALLEL_UPLOADS && uploadQueue.length) {
      startUpload(uploadQueue.shift());
    }
  }

  function startUpload(item) {
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    item.phase = 'uploading';
    item.sent = 0;
    item.note = '';
    uploadsRunning += 1;
    xhr.open('POST', '/upload');
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.addEventListener('progress', (event) => {
      item.sent = event.loaded;
      if (event.lengthComputable) item.total = event.total;
      render(item);
    });
    xhr.upload.addEventListener('load', () => {
      if (item.phase !== 'uploading') return;
      item.phase = 'sent';
      render(item);
    });
    xhr.addEventListener('load', () => uploadAnswered(item, xhr));
    xhr.addEventListener('error', () => {
      uploadFailed(item, 'the connection to pixdrop failed during the upload', true);
    });
    xhr.addEventListener('abort', () => {
      item.phase = 'upload-cancelled';
      render(item);
      announce(`${item.name} upload cancelled`);
    });
    xhr.addEventListener('loadend', () => {
      item.xhr = null;
      uploadsRunning -= 1;
      pumpUploads();
      updateSummary();
    });
    const form = new FormData();
    form.append('file', item.file, item.name);
    xhr.send(form);
    render(item);
  }

  function uploadAnswered(item, xhr) {
    const body = parseJson(xhr.responseText);
    if (xhr.status === 202 && body && Array.isArray(body.jobs) && body.jobs[0]) {
      const accepted = body.jobs[0];
      item.phase = 'job';
      item.jobId = accepted.id;
      item.job = {
        id: accepted.id,
        state: accepted.state || 'queued',
        attempts: 0,
        max_attempts: 0,
        progress: 0,
        step: null,
        error: null,
        variants: [],
      };
      itemsByJob.set(accepted.id, item);
      render(item);
      announce(`${item.name} uploaded`);
      follow(item);
      return;
    }
    // 400, 413 and 415 judge the file itself: sending the same bytes again cannot help.
    const retryable = ![400, 413, 415].includes(xhr.status);
    uploadFailed(item, problemDetail(body, xhr.status, xhr.statusText), retryable);
  }

  function uploadFailed(item, reason, retryable) {
    item.phase = 'upload-failed';
    item.reason = reason;
    item.retryable = retryable;
    render(item);
    announce(`${item.name} failed: ${reason}`);
  }

  function parseJson(text) {
    try {
      return JSON.parse(text);
    } catch {
      return null;
    }
  }

  function problemDetail(body, status, statusText) {
    if (body && typeof body.detail === 'string' && body.detail) return body.detail;
    if (!status) return 'pixdrop could not be reached';
    return `the server answered ${status}${statusText ? ` ${statusText}` : ''}`;
  }

  // ---- Jobs: cancel, retry, and what the server says about them ----

  async function request(method, url) {
    try {
      const response = await fetch(url, { method, headers: { Accept: 'application/json' } });
      const body = parseJson(await response.text());
      return { status: response.status, ok: response.ok, body };
    } catch {
      return { status: 0, ok: false, body: null };
    }
  }

  async function cancel(item) {
    if (item.phase === 'waiting') {
      uploadQueue.splice(uploadQueue.indexOf(item), 1);
      item.phase = 'upload-cancelled';
      render(item);
      announce(`${item.name} upload cancelled`);
      updateSummary();
      return;
    }
    if (item.phase === 'uploading' || item.phase === 'sent') {
      item.xhr.abort();
      return;
    }
    if (item.phase !== 'job') return;
    item.busy = true;
    render(item);
    const answer = await request('DELETE', `/jobs/${encodeURIComponent(item.jobId)}`);
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
    if (item.phase === 'upload-failed' || item.phase === 'upload-cancelled') {
      item.phase = 'waiting';
      item.reason = '';
      uploadQueue.push(item);
      render(item);
      pumpUploads();
      updateSummary();
      return;
    }
    if (item.phase !== 'job') return;
    item.busy = true;
    item.note = '';
    render(item);
    const answer = await request('POST', `/jobs/${encodeURIComponent(item.jobId)}/retry`);
    item.busy = false;
    if (answer.ok && answer.body) {
      // Queued again, whatever the answer says: a quick job may already have run and failed
      // again by the time the server read it back, and that must count as a new state.
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

  async function refresh(item) {
    const answer = await request('GET', `/jobs/${encodeURIComponent(item.jobId)}`);
    if (answer.ok && answer.body) applyJob(item, answer.body);
    else if (answer.status === 404) forgotten(item, problemDetail(answer.body, 404));
  }

  function removeItem(item) {
    // Keep keyboard focus in the list rather than dropping it on the page.
    const next = item.row.li.nextElementSibling || item.row.li.previousElementSibling;
    if (item.jobId) {
      unfollow(item);
      itemsByJob.delete(item.jobId);
    }
    revokePreview(item);
    item.row.li.remove();
    items.delete(item.key);
    if (next) {
      const target = next.querySelector('button:not([hidden])');
      if (target) target.focus();
    } else {
      ui.picker.focus();
    }
    if (!items.size) ui.uploads.hidden = true;
    updateSummary();
  }

  function revokePreview(item) {
    if (item.preview) URL.revokeObjectURL(item.preview);
    item.preview = null;
  }

  /** True when `incoming` is older than what we show: each change bumps the job's version. */
  function isStale(current, incoming) {
    if (!current) return false;
    if (Number.isFinite(current.version) && Number.isFinite(incoming.version)) {
      return incoming.version < current.version;
    }
    if (!current.updated_at || !incoming.updated_at) return false;
    return Date.parse(incoming.updated_at) < Date.parse(current.updated_at);
  }

  /** Takes a JobStatus (or a merged event) as our view of the job, announcing what changed. */
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
      const n = (job.variants || []).length;
      announce(`${item.name} done: ${plural(n, 'variant')}`);
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
    if (!UNFINISHED.has(job.state)) unfollow(item);
  }

  function errorText(job) {
    if (job.error && job.error.detail) return job.error.detail;
    if (job.error && job.error.code) return job.error.code;
    return 'processing failed';
  }

  function forgotten(item, reason) {
    item.phase = 'gone';
    item.reason = reason || 'the server no longer knows this job (it may have expired)';
    unfollow(item);
    render(item);
    updateSummary();
    announce(`${item.name}: ${item.reason}`);
  }

  // ---- The websocket: one for the page, resubscribing to every unfinished job ----

  let socket = null;
  let socketOpenedAt = 0;
  let reconnectAttempt = 0;
  let reconnectTimer = null;
  const polled = new Set();

  function unfinishedJobIds() {
    return [...itemsByJob.values()]
      .filter((item) => item.phase === 'job' && UNFINISHED.has(item.job.state))
      .map((item) => item.jobId);
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function follow(item) {
    // When the socket is down, its next open subscribes to every unfinished job.
    send({ subscribe: [item.jobId] });
  }

  function unfollow(item) {
    polled.delete(item.jobId);
    send({ unsubscribe: [item.jobId] });
  }

  function setConnection(state, text, title) {
    ui.conn.dataset.state = state;
    ui.connText.textContent = text;
    ui.conn.title = title;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    socket = ws;
    setConnection(
      reconnectAttempt ? 'reconnecting' : 'connecting',
      reconnectAttempt ? 'Reconnecting…' : 'Connecting…',
      'Connecting to the server for live updates',
    );
    ws.addEventListener('open', () => {
      socketOpenedAt = Date.now();
      setConnection('live', 'Live', 'Live updates from the server');
      // The server answers each subscription with a snapshot, which recovers anything missed.
      const ids = unfinishedJobIds();
      if (ids.length) send({ subscribe: ids });
    });
    ws.addEventListener('message', (event) => onMessage(event.data));
    ws.addEventListener('close', () => {
      if (socket !== ws) return;
      socket = null;
      if (socketOpenedAt && Date.now() - socketOpenedAt >= STABLE_SOCKET_MS) reconnectAttempt = 0;
      socketOpenedAt = 0;
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** reconnectAttempt);
    // Jitter: between half and all of the ceiling, so many pages do not come back in step.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    reconnectAttempt += 1;
    setConnection(
      'reconnecting',
      'Reconnecting…',
      `Connection lost; trying again in ${Math.ceil(delay / 1000)} s`,
    );
    reconnectTimer = setTimeout(connect, delay);
  }

  // Coming back online is a better moment to retry than the backoff's next tick.
  window.addEventListener('online', () => {
    if (!socket) {
      reconnectAttempt = 0;
      connect();
    }
  });

  function onMessage(data) {
    const message = parseJson(data);
    if (!message || typeof message !== 'object') return;
    if (message.type === 'snapshot') {
      if (ui.conn.dataset.state === 'degraded') {
        setConnection('live', 'Live', 'Live updates from the server');
      }
      const item = itemsByJob.get(message.id);
      if (item) applyJob(item, message);
    } else if (message.type === 'event') {
      const item = itemsByJob.get(message.id);
      if (item && item.job) applyJob(item, mergeEvent(item.job, message));
    } else if (message.type === 'error') {
      onServerError(message);
    }
  }

  function mergeEvent(job, event) {
    const merged = { ...job };
    for (const key of ['state', 'attempts', 'max_attempts', 'progress', 'step', 'error',
      'version', 'updated_at', 'variants', 'due_at']) {
      if (key in event) merged[key] = event[key];
    }
    if (merged.state !== 'retrying') delete merged.due_at;
    return merged;
  }

  function onServerError(message) {
    const item = message.id ? itemsByJob.get(message.id) : null;
    if (message.code === 'not-found' && item) {
      forgotten(item, message.detail);
    } else if (message.code === 'too-many-subscriptions' && item) {
      // The socket will not carry this one: ask about it now and then instead.
      poll(item);
    } else if (message.code === 'unavailable') {
      setConnection('degraded', 'Updates paused', message.detail ||
        'The server lost its job store; updates resume when it is back');
    } else {
      console.warn('pixdrop websocket:', message.code, message.detail);
    }
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

  // ---- Rendering ----

  function buildRow(item) {
    const li = el('li', 'file');
    const media = el('div', 'file-media');
    const body = el('div', 'file-body');
    const top = el('div', 'file-top');
    const name = el('span', 'file-name', item.name);
    name.title = item.name;
    const size = el('span', 'file-size', formatBytes(item.size));
    top.append(name, size);
    const status = el('div', 'file-status');
    const badge = el('span', 'badge');
    const detail = el('span', 'file-detail');
    status.append(badge, detail);
    const progress = el('progress', 'file-progress');
    progress.max = 100;
    progress.value = 0;
    const reason = el('p', 'file-reason');
    const note = el('p', 'file-note');
    const variants = el('ul', 'file-variants');
    variants.setAttribute('aria-label', `Variants of ${item.name}`);
    body.append(top, status, progress, reason, note, variants);

    const actions = el('div', 'file-actions');
    const cancelButton = button('Cancel', `Cancel ${item.name}`, 'btn', () => cancel(item));
    const retryButton = button('Retry', `Retry ${item.name}`, 'btn btn-primary', () => retry(item));
    const removeButton = button('×', `Remove ${item.name} from the list`, 'btn btn-icon',
      () => removeItem(item));
    actions.append(cancelButton, retryButton);
    removeButton.classList.add('file-remove');

    let img = null;
    if (item.preview) {
      img = el('img', 'file-img');
      img.alt = `Preview of ${item.name}`;
      img.decoding = 'async';
      // A format the browser cannot show (TIFF, say) still gets a tile.
      img.addEventListener('error', () => {
        if (img.src.startsWith('blob:')) img.replaceWith(extensionTile(item.name));
      }, { once: true });
      img.src = item.preview;
      media.append(img);
    } else {
      media.append(extensionTile(item.name));
    }
    li.append(media, body, actions, removeButton);
    return {
      li, media, img, badge, detail, progress, reason, note, variants, actions,
      cancelButton, retryButton, removeButton,
    };
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function button(text, label, className, onClick) {
    const node = el('button', className, text);
    node.type = 'button';
    node.setAttribute('aria-label', label);
    node.addEventListener('click', onClick);
    return node;
  }

  function extensionTile(name) {
    const tile = el('span', 'file-ext', (extensionOf(name) || 'file').slice(0, 4).toUpperCase());
    tile.setAttribute('aria-hidden', 'true');
    return tile;
  }

  /** What a row shows for an item: its state key, words, progress and possible actions. */
  function view(item) {
    const percent = (done, total) => (total > 0 ? Math.min(100, Math.round((done / total) * 100)) : 0);
    switch (item.phase) {
      case 'rejected':
        return { state: 'rejected', badge: 'Not accepted', reason: item.reason, remove: true };
      case 'waiting':
        return {
          state: 'waiting', badge: 'Waiting', detail: 'Waiting for a free upload slot',
          progress: 0, progressLabel: `Upload of ${item.name}`, cancel: true,
        };
      case 'uploading': {
        const p = percent(item.sent, item.total);
        return {
          state: 'uploading', badge: 'Uploading',
          detail: `${p}% · ${formatBytes(item.sent)} of ${formatBytes(item.total)}`,
          progress: p, progressLabel: `Upload of ${item.name}`, cancel: true,
        };
      }
      case 'sent':
        return {
          state: 'uploading', badge: 'Uploading', detail: 'Sent; the server is checking it',
          progress: 100, progressLabel: `Upload of ${item.name}`, cancel: true,
        };
      case 'upload-failed':
        return {
          state: 'failed', badge: 'Failed', detail: 'Upload failed', reason: item.reason,
          retry: item.retryable, remove: true,
        };
      case 'upload-cancelled':
        return { state: 'cancelled', badge: 'Cancelled', detail: 'Upload cancelled', retry: true, remove: true };
      case 'gone':
        return { state: 'gone', badge: 'Expired', reason: item.reason, remove: true };
      default:
        return jobView(item);
    }
  }

  function jobView(item) {
    const { job } = item;
    const label = `Processing of ${item.name}`;
    switch (job.state) {
      case 'queued':
        return {
          state: 'queued', badge: 'Queued', detail: 'Uploaded; waiting for a worker',
          progress: 0, progressLabel: label, cancel: true,
        };
      case 'active':
        return {
          state: 'active', badge: 'Processing',
          detail: `${job.progress || 0}% · ${job.step || 'starting'}`,
          progress: job.progress || 0, progressLabel: label, cancel: true,
        };
      case 'retrying': {
        const due = job.due_at ? Date.parse(job.due_at) - Date.now() : NaN;
        const when = Number.isFinite(due) && due > 0 ? ` in ${Math.ceil(due / 1000)} s` : ' soon';
        return {
          state: 'retrying', badge: 'Retrying',
          detail: `Attempt ${job.attempts} of ${job.max_attempts} failed: ${errorText(job)}. Trying again${when}`,
          progress: job.progress || 0, progressLabel: label, cancel: true,
        };
      }
      case 'completed': {
        const n = (job.variants || []).length;
        const original = job.original && job.original.width
          ? ` · original ${job.original.width}×${job.original.height}` : '';
        return { state: 'completed', badge: 'Done', detail: `${plural(n, 'variant')}${original}`, remove: true };
      }
      case 'failed':
        return {
          state: 'failed', badge: 'Failed',
          detail: `after ${plural(job.attempts || 1, 'attempt')}`,
          reason: errorText(job), retry: true, remove: true,
        };
      case 'cancelled':
        return { state: 'cancelled', badge: 'Cancelled', detail: 'Processing cancelled', retry: true, remove: true };
      default:
        return { state: job.state, badge: job.state, remove: true };
    }
  }

  function render(item) {
    const row = item.row;
    if (!row) return;
    const v = view(item);
    row.li.dataset.state = v.state;
    row.badge.textContent = v.badge;
    row.detail.textContent = v.detail || '';
    setText(row.reason, v.reason);
    setText(row.note, item.note);

    const showProgress = v.progress !== undefined;
    row.progress.hidden = !showProgress;
    if (showProgress) {
      row.progress.value = v.progress;
      row.progress.setAttribute('aria-label', v.progressLabel);
      row.progress.setAttribute('aria-valuetext', `${v.progress}%`);
    }

    row.cancelButton.hidden = !v.cancel;
    row.retryButton.hidden = !v.retry;
    row.removeButton.hidden = !v.remove;
    row.cancelButton.disabled = item.busy;
    row.retryButton.disabled = item.busy;
    row.actions.hidden = !(v.cancel || v.retry);

    renderResult(item, v.state === 'completed');
  }

  function setText(node, text) {
    node.textContent = text || '';
    node.hidden = !text;
  }

  function renderResult(item, completed) {
    const row = item.row;
    const variants = completed ? item.job.variants || [] : [];
    row.variants.hidden = !variants.length;
    const signature = JSON.stringify([variants, completed && item.job.original]);
    if (row.variants.dataset.signature === signature) return;
    row.variants.dataset.signature = signature;
    row.variants.replaceChildren();
    for (const variant of variants) row.variants.append(variantLink(variant));
    const original = completed && item.job.original;
    if (variants.length && original && original.url) {
      row.variants.append(variantLink({
        name: 'original', width: original.width, height: original.height,
        bytes: original.bytes, url: original.url,
      }));
    }
    if (variants.length) showThumbnail(item, variants);
  }

  function variantLink(variant) {
    const li = document.createElement('li');
    const a = el('a');
    a.href = variant.url;
    a.target = '_blank';
    a.rel = 'noopener';
    const dims = variant.width ? `${variant.width}×${variant.height}` : '';
    const meta = [dims, formatBytes(variant.bytes)].filter(Boolean).join(' · ');
    a.append(el('span', 'variant-name', variant.name), ' ', el('span', 'variant-meta', meta));
    const spoken = [variant.width ? `${variant.width} by ${variant.height} pixels` : '',
      formatBytes(variant.bytes)].filter(Boolean).join(', ');
    a.setAttribute('aria-label', `${variant.name}: ${spoken}`);
    li.append(a);
    return li;
  }

  /** The server's thumbnail: the variant named thumb, else the smallest. */
  function showThumbnail(item, variants) {
    const thumb = variants.find((v) => v.name === 'thumb') ||
      [...variants].sort((a, b) => (a.bytes || 0) - (b.bytes || 0))[0];
    if (!thumb || item.thumbShown === thumb.url) return;
    item.thumbShown = thumb.url;
    // Load it off-screen first so the local preview stays until the real one can replace it.
    const loader = new Image();
    loader.addEventListener('load', () => {
      const img = el('img', 'file-img');
      img.alt = `Thumbnail of ${item.name}`;
      img.width = loader.naturalWidth;
      img.height = loader.naturalHeight;
      img.src = thumb.url;
      item.row.media.replaceChildren(img);
      item.row.img = img;
      revokePreview(item);
    }, { once: true });
    loader.src = thumb.url;
  }

  function updateSummary() {
    let done = 0;
    let working = 0;
    let failed = 0;
    for (const item of items.values()) {
      const { state } = view(item);
      if (state === 'completed') done += 1;
      else if (state === 'failed' || state === 'rejected') failed += 1;
      else if (['waiting', 'uploading', 'queued', 'active', 'retrying'].includes(state)) working += 1;
    }
    const parts = [plural(items.size, 'photo')];
    if (done) parts.push(`${done} done`);
    if (working) parts.push(`${working} in progress`);
    if (failed) parts.push(`${failed} failed`);
    ui.summary.textContent = parts.join(' · ');
    ui.clearDone.hidden = !done;
  }

  ui.clearDone.addEventListener('click', () => {
    for (const item of [...items.values()]) {
      if (view(item).state === 'completed') removeItem(item);
    }
    ui.picker.focus();
  });

  // Retry countdowns tick down while any job waits out its backoff.
  setInterval(() => {
    for (const item of items.values()) {
      if (item.phase === 'job' && item.job.state === 'retrying') render(item);
    }
  }, 1000);

  function announce(text) {
    ui.announcer.append(el('p', '', text));
    while (ui.announcer.childElementCount > ANNOUNCEMENTS_KEPT) {
      ui.announcer.firstElementChild.remove();
    }
  }

  // Leaving mid-upload loses the upload: ask first.
  window.addEventListener('beforeunload', (event) => {
    if (uploadsRunning || uploadQueue.length) event.preventDefault();
  });

  connect();
})();
