// Sending files: one XMLHttpRequest per file, because fetch cannot report upload progress; a few
// at once, the rest waiting their turn in the order they were added.
import { parseJson, problemDetail } from './api.js';
import { authHeaders } from './session.js';

// A few at once keep the pipe full without starving each other of bandwidth.
const PARALLEL = 3;
// These judge the file itself: sending the same bytes again cannot help.
const FINAL_STATUSES = [400, 413, 415];

export class Uploads {
  /**
   * Each callback gets the item: `onProgress` as bytes go out, `onAccepted(item, job)` with the
   * 202's job, `onFailed(item, reason, retryable)`, `onCancelled`, and `onIdle` when a slot frees.
   */
  constructor(callbacks) {
    this.callbacks = callbacks;
    this.waiting = [];
    this.running = 0;
  }

  /** True while anything is being sent or waits to be. */
  get busy() {
    return this.running > 0 || this.waiting.length > 0;
  }

  add(item) {
    item.phase = 'waiting';
    item.sent = 0;
    this.waiting.push(item);
    this.pump();
  }

  cancel(item) {
    const index = this.waiting.indexOf(item);
    if (index >= 0) {
      this.waiting.splice(index, 1);
      item.phase = 'upload-cancelled';
      this.callbacks.onCancelled(item);
    } else if (item.xhr) {
      item.xhr.abort();
    }
  }

  pump() {
    while (this.running < PARALLEL && this.waiting.length) this.send(this.waiting.shift());
  }

  send(item) {
    const { onProgress, onAccepted, onFailed, onCancelled, onIdle } = this.callbacks;
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    item.phase = 'uploading';
    item.sent = 0;
    this.running += 1;
    xhr.open('POST', '/upload');
    xhr.setRequestHeader('Accept', 'application/json');
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener('progress', (event) => {
      item.sent = event.loaded;
      if (event.lengthComputable) item.total = event.total;
      onProgress(item);
    });
    xhr.upload.addEventListener('load', () => {
      // Every byte is out; the server now checks the file and answers.
      item.phase = 'sent';
      onProgress(item);
    });
    xhr.addEventListener('load', () => {
      const body = parseJson(xhr.responseText);
      const job = xhr.status === 202 && body && Array.isArray(body.jobs) ? body.jobs[0] : null;
      if (job) {
        onAccepted(item, job);
      } else {
        item.phase = 'upload-failed';
        const reason = problemDetail(body, xhr.status, xhr.statusText);
        onFailed(item, reason, !FINAL_STATUSES.includes(xhr.status));
      }
    });
    xhr.addEventListener('error', () => {
      item.phase = 'upload-failed';
      onFailed(item, 'the connection to pixdrop failed during the upload', true);
    });
    xhr.addEventListener('abort', () => {
      item.phase = 'upload-cancelled';
      onCancelled(item);
    });
    xhr.addEventListener('loadend', () => {
      item.xhr = null;
      this.running -= 1;
      this.pump();
      onIdle();
    });
    const form = new FormData();
    // A photo dropped here has someone watching it: it goes before bulk uploads sent with curl.
    form.append('priority', 'high');
    form.append('file', item.file, item.name);
    xhr.send(form);
    onProgress(item);
  }
}
