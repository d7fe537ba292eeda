// The page's websocket across a pixdrop restart: jobs queued by an HTTP-only pixdrop wait; the page
// cancels one; pixdrop stops and comes back with workers on the same port and storage; without a
// reload the page reconnects, resubscribes, and sees the waiting job finish and later ones too.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { PHOTOS_DIR, dropFiles, fileFrom, openPage, row, screenshot, withPixdropAndBrowser } from './browser.js';

const PROCESSED_MS = 60_000;

let pixdrop;
let browser;

withPixdropAndBrowser({ args: ['serve', '--no-workers'] }, (started, launched) => {
  pixdrop = started;
  browser = launched;
});

const state = (page, name, value) =>
  row(page, name).and(page.locator(`[data-state="${value}"]`));

test('the page reconnects by itself after pixdrop restarts and follows its jobs to the end', async () => {
  const { context, page, problems } = await openPage(browser, pixdrop.url);
  const sockets = [];
  page.on('websocket', (ws) => {
    const entry = { url: ws.url(), closed: false };
    ws.on('close', () => {
      entry.closed = true;
    });
    sockets.push(entry);
  });
  try {
    await dropFiles(page, ['GreenMeadow.jpg', 'FreshFlower.jpg'].map(
      (name) => fileFrom(path.join(PHOTOS_DIR, name)),
    ));
    await state(page, 'GreenMeadow.jpg', 'queued').waitFor();
    await state(page, 'FreshFlower.jpg', 'queued').waitFor();

    // A cancel that comes too late is told so (the server's 409, faked: with no workers nothing
    // can finish first).
    await page.route('**/jobs/*', (route) => {
      if (route.request().method() !== 'DELETE') return route.continue();
      return route.fulfill({
        status: 409,
        contentType: 'application/problem+json',
        body: JSON.stringify({
          status: 409, title: 'Conflict', code: 'already-finished',
          detail: 'job is already completed; only queued, retrying or active jobs can be cancelled',
        }),
      });
    });
    const meadow = row(page, 'GreenMeadow.jpg');
    await meadow.getByRole('button', { name: 'Cancel GreenMeadow.jpg' }).click();
    await meadow.locator('.file-note', { hasText: 'Too late to cancel: it had already finished.' }).waitFor();
    await page.unroute('**/jobs/*');

    // A real cancel of a queued job.
    const flower = row(page, 'FreshFlower.jpg');
    const [cancelled] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'DELETE'),
      flower.getByRole('button', { name: 'Cancel FreshFlower.jpg' }).click(),
    ]);
    assert.equal(cancelled.status(), 200);
    await state(page, 'FreshFlower.jpg', 'cancelled').waitFor();

    // pixdrop goes away: the page says so, discreetly, and keeps trying.
    await pixdrop.stop();
    await page.locator('#conn[data-state="reconnecting"]').waitFor();
    assert.equal(await page.locator('#conn-text').textContent(), 'Reconnecting…');

    // It comes back, now with workers: the queued job finishes without a reload.
    await pixdrop.start(['serve']);
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: 30_000 });
    await state(page, 'GreenMeadow.jpg', 'completed').waitFor({ timeout: PROCESSED_MS });
    await meadow.locator('img[src^="/media/variants/"]').waitFor();

    // The cancelled one can be retried, and a new upload goes through the new socket.
    await flower.getByRole('button', { name: 'Retry FreshFlower.jpg' }).click();
    await state(page, 'FreshFlower.jpg', 'completed').waitFor({ timeout: PROCESSED_MS });
    await dropFiles(page, [fileFrom(path.join(PHOTOS_DIR, 'Dune.jpg'))]);
    await state(page, 'Dune.jpg', 'completed').waitFor({ timeout: PROCESSED_MS });

    const open = sockets.filter((s) => !s.closed);
    assert.equal(open.length, 1, 'one websocket for the page');
    assert.ok(sockets.length >= 1, 'the page opened a new socket after the restart');
    assert.deepEqual(problems, []);
  } catch (error) {
    await screenshot(page, 'failure-reconnect.png').catch(() => {});
    console.error(pixdrop.log());
    throw error;
  } finally {
    await context.close();
  }
});
