// Sign-in on the page against a pixdrop that requires API tokens: the page asks for a token,
// refuses a wrong one with the server's reason, then uploads as its subject; after a reload the
// uploads are still listed with their thumbnails; signing out asks for the token again.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { PHOTOS_DIR, dropFiles, fileFrom, row, screenshot, withPixdropAndBrowser } from './browser.js';

const PROCESSED_MS = 60_000;
const TOKEN = `pxd_${crypto.randomBytes(32).toString('base64url')}`;

const configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdrop-e2e-config-'));
const config = path.join(configDir, 'config.toml');
fs.writeFileSync(config, `[auth]
mode = "tokens"

[[auth.tokens]]
subject = "e2e-user"
sha256 = "${crypto.createHash('sha256').update(TOKEN).digest('hex')}"
`);

let pixdrop;
let browser;

withPixdropAndBrowser({ args: ['--config', config, 'serve'] }, (started, launched) => {
  pixdrop = started;
  browser = launched;
});

test('sign in with a token, upload, reload: the uploads are still listed with their thumbnails', async () => {
  const context = await browser.newContext({ baseURL: pixdrop.url, reducedMotion: 'reduce' });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  try {
    await page.goto('/');
    await page.locator('#signin').waitFor();
    assert.equal(await page.locator('#drop').isHidden(), true, 'nothing to drop into before sign-in');

    await page.locator('#token').fill('pxd_not-the-right-one');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#signin-error', { hasText: 'not valid' }).waitFor();

    await page.locator('#token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#who', { hasText: 'Signed in as e2e-user' }).waitFor();
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: 15_000 });

    const names = ['GreenMeadow.jpg', 'Dune.jpg'];
    await dropFiles(page, names.map((name) => fileFrom(path.join(PHOTOS_DIR, name))));
    for (const name of names) {
      await row(page, name).and(page.locator('[data-state="completed"]')).waitFor({ timeout: PROCESSED_MS });
    }

    await page.reload();
    await page.locator('#who', { hasText: 'e2e-user' }).waitFor();
    for (const name of names) {
      const restored = row(page, name);
      await restored.and(page.locator('[data-state="completed"]')).waitFor();
      // The thumbnail is the server's WebP, through its signed URL.
      const thumb = restored.locator('img.file-img');
      await thumb.waitFor();
      const src = await thumb.getAttribute('src');
      assert.match(src, /\/media\/variants\/.+\.webp\?expires=\d+&sig=/);
      assert.ok(await thumb.evaluate((img) => img.complete && img.naturalWidth > 0), `${name} thumbnail loads`);
    }
    await screenshot(page, 'signed-in-after-reload.png');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#signin').waitFor();
    assert.equal(await page.locator('li.file').count(), 0, 'the last caller\'s uploads are gone');
    assert.deepEqual(problems, []);
  } catch (error) {
    await screenshot(page, 'failure-signin.png').catch(() => {});
    console.error(pixdrop.log());
    throw error;
  } finally {
    await context.close();
    fs.rmSync(configDir, { recursive: true, force: true });
  }
});
