// The server's upload limits (GET /limits) and the checks that mirror them before any byte is
// sent, so a wrong file is explained at once. The server still decides.
import { extensionOf, formatBytes } from './words.js';

const FORMAT_NAMES = {
  jpeg: 'JPEG', png: 'PNG', gif: 'GIF', webp: 'WebP', bmp: 'BMP', tiff: 'TIFF',
};

/** The server's defaults, in force until GET /limits answers (or if it never does). */
export const limits = {
  max_file_bytes: 52_428_800,
  max_files: 20,
  max_body_bytes: 209_715_200,
  formats: ['jpeg', 'png', 'gif', 'webp', 'bmp', 'tiff'],
  mime_types: ['image/jpeg', 'image/png', 'image/gif', 'image/webp', 'image/bmp', 'image/tiff'],
  extensions: ['jpg', 'jpeg', 'png', 'gif', 'webp', 'bmp', 'tif', 'tiff'],
  variants: [],
};

/** Resolves once the server's limits are in `limits` (or it did not answer: the defaults stay). */
export const limitsLoaded = fetch('/limits', { headers: { Accept: 'application/json' } })
  .then((response) => (response.ok ? response.json() : null))
  .then((loaded) => {
    if (loaded) Object.assign(limits, loaded);
  })
  .catch(() => {});

export function formatNames() {
  return limits.formats.map((f) => FORMAT_NAMES[f] || f.toUpperCase());
}

/** Why this file cannot be sent, in words, or null when it may be. */
export function refusal(file) {
  const name = file.name || 'The file';
  // Either is enough: browsers leave the type empty for what the system does not know.
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
