// Debian's Chromium, driven headless through playwright-core (no browser download), and the few
// page moves the tests share: open the page, drop files on it, find a file's row.
import fs from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

import { Pixdrop, repoRoot } from './pixdrop.js';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const PHOTOS_DIR = '/usr/share/backgrounds/mate/nature';
export const SCREENSHOTS = path.join(repoRoot, 'target', 'e2e');

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Registers the hooks every test file shares: before its tests, start pixdrop (with `options`, see
 * `Pixdrop.create`) and the browser, handed to `ready(pixdrop, browser)`; after them, close the
 * browser and insist pixdrop stops cleanly, killing it whatever happens.
 */
export function withPixdropAndBrowser(options, ready) {
  let pixdrop;
  let browser;
  before(async () => {
    pixdrop = await Pixdrop.create(options);
    browser = await launch();
    await ready(pixdrop, browser);
  });
  after(async () => {
    await browser?.close();
    try {
      await pixdrop?.stop();
      pixdrop?.cleanUp();
    } finally {
      pixdrop?.kill();
    }
  });
}

/**
 * A fresh context and page on pixdrop's `/`, with every uncaught error and CSP violation kept in
 * `problems` so a test can insist there were none. `prepare(page)` runs before the page loads.
 */
export async function openPage(browser, baseURL, contextOptions = {}, prepare = () => {}) {
  const context = await browser.newContext({
    baseURL,
    viewport: { width: 960, height: 900 },
    reducedMotion: 'reduce',
    ...contextOptions,
  });
  const page = await context.newPage();
  await prepare(page);
  const problems = [];
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
  const response = await page.goto('/');
  // The socket's first open is the page saying it is ready for live updates.
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 15_000 });
  return { context, page, problems, response };
}

/** A file for the page, from disk or made up; `type` is what a browser would say for it. */
export function fileFrom(filePath, name = path.basename(filePath), type = 'image/jpeg') {
  return { name, type, base64: fs.readFileSync(filePath).toString('base64') };
}

export function fileOf(name, bytes, type) {
  return { name, type, base64: Buffer.from(bytes).toString('base64') };
}

/** Drops the files on the drop zone in one real `drop` event, as a drag from the desktop does. */
export async function dropFiles(page, files) {
  const dataTransfer = await page.evaluateHandle((list) => {
    const transfer = new DataTransfer();
    for (const { name, type, base64 } of list) {
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      transfer.items.add(new File([bytes], name, { type }));
    }
    return transfer;
  }, files);
  await page.locator('#drop').dispatchEvent('drop', { dataTransfer });
  await dataTransfer.dispose();
}

/** The list row of the file with exactly this name. */
export function row(page, name) {
  const exact = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  return page.locator('li.file', { has: page.locator('.file-name', { hasText: exact }) });
}

export async function screenshot(page, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
