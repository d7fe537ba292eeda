// The server's upload limits (GET /limits) and the checks that mirror them before any byte is
// sent, so a wrong file is explained at once. The server still decides.
import { extensionOf, formatBytes } from './words.js';

/**
 * What the page knows of the server's limits: nothing until GET /limits answers. Until then (or
 * if it never does) the page checks nothing and lets the server decide.
 */
export const limits = {
  max_file_bytes: Infinity,
  max_files: Infinity,
  max_body_bytes: Infinity,
  formats: [],
  format_labels: [],
  mime_types: [],
  extensions: [],
  variants: [],
};

/** Resolves once the server's limits are in `limits` (or it did not answer: nothing is known). */
export const limitsLoaded = fetch('/limits', { headers: { Accept: 'application/json' } })
  .then((response) => (response.ok ? response.json() : null))
  .then((loaded) => {
    if (loaded) Object.assign(limits, loaded);
  })
  .catch(() => {});

/** The accepted formats as people know them: JPEG, PNG, ... */
export function formatNames() {
  return limits.format_labels;
}

/** Why this file cannot be sent, in words, or null when it may be. */
export function refusal(file) {
  const name = file.name || 'The file';
  // Either is enough: browsers leave the type empty for what the system does not know.
  const known = limits.mime_types.length > 0;
  const typeOk = limits.mime_types.includes(file.type);
  const extensionOk = limits.extensions.includes(extensionOf(file.name || ''));
  if (known && !typeOk && !extensionOk) {
    return `${name} is not an image pixdrop accepts (${formatNames().join(', ')})`;
  }
  if (file.size > limits.max_file_bytes) {
    return `${name} is ${formatBytes(file.size)}; the limit is ${formatBytes(limits.max_file_bytes)}`;
  }
  if (file.size === 0) return `${name} is empty`;
  return null;
}
