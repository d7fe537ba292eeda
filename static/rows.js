// One list row per file: its picture, name, size, state, progress, reason, variant links and
// buttons. `view` decides what an item looks like in words; `Row` only puts that on screen.
import { errorText, thumbnailOf } from './jobs.js';
import { extensionOf, formatBytes, plural } from './words.js';

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// The visible word starts the accessible name, so voice control ("click Retry") still works.
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

function percent(done, total) {
  return total > 0 ? Math.min(100, Math.round((done / total) * 100)) : 0;
}

/**
 * What a row shows for an item: `state` (the row's data-state, which styles it), `badge`,
 * `detail`, `reason` (why it failed), `progress` (0-100, or undefined for no bar) and which
 * buttons it offers.
 */
export function view(item) {
  const uploadLabel = `Upload of ${item.name}`;
  switch (item.phase) {
    case 'rejected':
      return { state: 'rejected', badge: 'Not accepted', reason: item.reason, remove: true };
    case 'waiting':
      return {
        state: 'waiting', badge: 'Waiting', detail: 'Waiting for a free upload slot',
        progress: 0, progressLabel: uploadLabel, cancel: true,
      };
    case 'uploading': {
      const p = percent(item.sent, item.total);
      return {
        state: 'uploading', badge: 'Uploading',
        detail: `${p}% · ${formatBytes(item.sent)} of ${formatBytes(item.total)}`,
        progress: p, progressLabel: uploadLabel, cancel: true,
      };
    }
    case 'sent':
      return {
        state: 'uploading', badge: 'Uploading', detail: 'Sent; the server is checking it',
        progress: 100, progressLabel: uploadLabel, cancel: true,
      };
    case 'upload-failed':
      return {
        state: 'failed', badge: 'Failed', detail: 'Upload failed', reason: item.reason,
        retry: item.retryable, remove: true,
      };
    case 'upload-cancelled':
      return {
        state: 'cancelled', badge: 'Cancelled', detail: 'Upload cancelled', retry: true, remove: true,
      };
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
        state: 'active', badge: 'Processing', detail: `${job.progress || 0}% · ${job.step || 'starting'}`,
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
      return {
        state: 'completed', badge: 'Done', detail: `${plural(n, 'variant')}${original}`, remove: true,
        del: item.deletable,
      };
    }
    case 'failed':
      return {
        state: 'failed', badge: 'Failed', detail: `after ${plural(job.attempts || 1, 'attempt')}`,
        reason: errorText(job), retry: true, remove: true, del: item.deletable,
      };
    case 'cancelled':
      return {
        state: 'cancelled', badge: 'Cancelled', detail: 'Processing cancelled', retry: true, remove: true,
        del: item.deletable,
      };
    default:
      return { state: job.state, badge: job.state, remove: true };
  }
}

function variantLink(variant) {
  const li = el('li');
  const a = el('a');
  a.href = variant.url;
  a.target = '_blank';
  a.rel = 'noopener';
  const dims = variant.width ? `${variant.width}×${variant.height}` : '';
  const meta = [dims, formatBytes(variant.bytes)].filter(Boolean).join(' · ');
  a.append(el('span', 'variant-name', variant.name), ' ', el('span', 'variant-meta', meta));
  // "320 by 240 pixels" reads better aloud than "320×240".
  const spoken = [variant.width ? `${variant.width} by ${variant.height} pixels` : '',
    formatBytes(variant.bytes)].filter(Boolean).join(', ');
  a.setAttribute('aria-label', `${variant.name}: ${spoken}`);
  li.append(a);
  return li;
}

export class Row {
  /**
   * `actions` holds `cancel`, `retry`, `remove` (from the list), `askDelete` (shows the
   * confirmation), `confirmDelete` and `keep` (hides it), each called with no argument.
   */
  constructor(item, actions) {
    this.item = item;
    this.li = el('li', 'file');
    this.media = el('div', 'file-media');
    const body = el('div', 'file-body');
    const top = el('div', 'file-top');
    const name = el('span', 'file-name', item.name);
    name.title = item.name;
    top.append(name, el('span', 'file-size', formatBytes(item.size)));
    const status = el('div', 'file-status');
    this.badge = el('span', 'badge');
    this.detail = el('span', 'file-detail');
    status.append(this.badge, this.detail);
    this.progress = el('progress', 'file-progress');
    this.progress.max = 100;
    this.progress.value = 0;
    this.reason = el('p', 'file-reason');
    this.note = el('p', 'file-note');
    this.variants = el('ul', 'file-variants');
    this.variants.setAttribute('aria-label', `Variants of ${item.name}`);
    body.append(top, status, this.progress, this.reason, this.note, this.variants);

    this.actions = el('div', 'file-actions');
    this.cancelButton = button('Cancel', `Cancel ${item.name}`, 'btn', actions.cancel);
    this.retryButton = button('Retry', `Retry ${item.name}`, 'btn btn-primary', actions.retry);
    this.deleteButton = button('Delete', `Delete ${item.name} from the server`, 'btn',
      actions.askDelete);
    this.actions.append(this.cancelButton, this.retryButton, this.deleteButton);
    // Deleting cannot be undone: the row asks first, in place rather than in a modal dialog.
    this.confirm = el('div', 'file-confirm');
    this.confirm.setAttribute('role', 'group');
    this.confirm.setAttribute('aria-label', `Confirm deleting ${item.name}`);
    this.confirmText = el('span', 'file-confirm-text',
      'Delete this upload and its variants for good?');
    this.confirmButton = button('Delete for good', `Delete ${item.name} for good`, 'btn btn-danger',
      actions.confirmDelete);
    this.keepButton = button('Keep', `Keep ${item.name}`, 'btn', actions.keep);
    this.confirm.append(this.confirmText, this.confirmButton, this.keepButton);
    body.append(this.confirm);
    this.removeButton = button('×', `Remove ${item.name} from the list`, 'btn btn-icon file-remove',
      actions.remove);

    this.media.append(item.preview ? this.previewImage() : extensionTile(item.name));
    this.li.append(this.media, body, this.actions, this.removeButton);
    this.resultSignature = null;
    this.thumbShown = null;
  }

  previewImage() {
    const { item } = this;
    const img = el('img', 'file-img');
    img.alt = `Preview of ${item.name}`;
    img.decoding = 'async';
    // A format the browser cannot show (TIFF, say) still gets a tile.
    img.addEventListener('error', () => {
      if (img.src.startsWith('blob:')) img.replaceWith(extensionTile(item.name));
    }, { once: true });
    img.src = item.preview;
    return img;
  }

  render() {
    const { item } = this;
    const v = view(item);
    this.li.dataset.state = v.state;
    this.badge.textContent = v.badge;
    this.detail.textContent = v.detail || '';
    setText(this.reason, v.reason);
    setText(this.note, item.note);

    const showProgress = v.progress !== undefined;
    this.progress.hidden = !showProgress;
    if (showProgress) {
      this.progress.value = v.progress;
      this.progress.setAttribute('aria-label', v.progressLabel);
    }

    this.cancelButton.hidden = !v.cancel;
    this.retryButton.hidden = !v.retry;
    this.deleteButton.hidden = !v.del || item.confirming;
    this.removeButton.hidden = !v.remove;
    this.cancelButton.disabled = item.busy;
    this.retryButton.disabled = item.busy;
    this.deleteButton.disabled = item.busy;
    this.confirm.hidden = !(v.del && item.confirming);
    this.confirmButton.disabled = item.busy;
    this.keepButton.disabled = item.busy;
    this.actions.hidden = !(v.cancel || v.retry || (v.del && !item.confirming));
    this.renderResult(v.state === 'completed' ? item.job : null);
    return v;
  }

  renderResult(job) {
    const variants = job ? job.variants || [] : [];
    this.variants.hidden = !variants.length;
    const signature = JSON.stringify([variants, job && job.original]);
    if (this.resultSignature === signature) return;
    this.resultSignature = signature;
    this.variants.replaceChildren(...variants.map(variantLink));
    const original = job && job.original;
    if (variants.length && original && original.url) {
      this.variants.append(variantLink({
        name: 'original', width: original.width, height: original.height,
        bytes: original.bytes, url: original.url,
      }));
    }
    if (variants.length) this.showThumbnail(thumbnailOf(variants));
  }

  /** Swaps the local preview for the server's thumbnail once that has loaded. */
  showThumbnail(thumb) {
    if (!thumb || this.thumbShown === thumb.url) return;
    this.thumbShown = thumb.url;
    const { item } = this;
    const loader = new Image();
    loader.addEventListener('load', () => {
      const img = el('img', 'file-img');
      img.alt = `Thumbnail of ${item.name}`;
      img.width = loader.naturalWidth;
      img.height = loader.naturalHeight;
      img.src = thumb.url;
      this.media.replaceChildren(img);
      item.revokePreview();
    }, { once: true });
    loader.src = thumb.url;
  }
}

function setText(node, text) {
  node.textContent = text || '';
  node.hidden = !text;
}
