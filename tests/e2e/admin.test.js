// The admin dashboard, with the admin API opened to loopback callers: counts and the chart fill
// in, jobs appear live from the event stream, a failed job shows its error and is deleted from
// its row, and the pause button holds the queue until it is pressed again.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { PHOTOS_DIR, screenshot, withPixdropAndBrowser } from './browser.js';
import { Pixdrop } from './pixdrop.js';

let pixdrop;
let browser;

withPixdropAndBrowser({ env: { PIXDROP__AUTH__ADMIN_ON_LOOPBACK: 'true' } }, (started, launched) => {
  pixdrop = started;
  browser = launched;
});

/** Uploads `bytes` as `name` with curl's shape of request; the job's id. */
async function upload(name, bytes) {
  const form = new FormData();
  form.append('file', new Blob([bytes], { type: 'image/jpeg' }), name);
  const response = await fetch(`${pixdrop.url}/upload`, { method: 'POST', body: form });
  assert.equal(response.status, 202, await response.clone().text());
  return (await response.json()).jobs[0].id;
}

async function queue() {
  return (await fetch(`${pixdrop.url}/admin/queue`)).json();
}

test('the dashboard follows the queue live and its buttons act on it', async () => {
  const context = await browser.newContext({ baseURL: pixdrop.url, viewport: { width: 1200, height: 1000 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text());
  });
  try {
    const response = await page.goto('/admin');
    assert.match(response.headers()['content-security-policy'], /script-src 'self'/);
    await page.locator('#live[data-state="live"]').waitFor({ timeout: 15_000 });

    const photo = fs.readFileSync(path.join(PHOTOS_DIR, 'GreenMeadow.jpg'));
    const good = await upload('meadow.jpg', photo);
    const broken = await upload('broken.jpg', photo.subarray(0, photo.length >> 1));

    // Both show up live in the recent jobs, each in its final state.
    await page.locator(`#recent tr[data-id="${good}"][data-state="completed"]`).waitFor({ timeout: 60_000 });
    await page.locator(`#recent tr[data-id="${broken}"][data-state="failed"]`).waitFor({ timeout: 60_000 });
    // The failed job is listed with its error code, and the tiles count both.
    const failedRow = page.locator(`#failed tr[data-id="${broken}"]`);
    await failedRow.locator('.code', { hasText: 'truncated-image' }).waitFor({ timeout: 10_000 });
    await page.locator('#n-completed', { hasText: /^1$/ }).waitFor({ timeout: 10_000 });
    await page.locator('#n-failed', { hasText: /^1$/ }).waitFor();
    // The instance's workers and the repeating tasks are shown; the chart has samples drawn.
    // One instance: its busy / running / slots (the pool runs between workers.min and its 8 slots).
    await page.locator('#instances tr td', { hasText: /^[0-8] \/ [2-8] \/ 8$/ }).waitFor({ timeout: 10_000 });
    await page.locator('#n-running', { hasText: /^[2-8]$/ }).waitFor();
    await page.locator('#tasks td', { hasText: 'expire-finished' }).waitFor({ timeout: 10_000 });
    await page.locator('#chart polyline.line-waiting').waitFor({ state: 'attached', timeout: 10_000 });

    // Pause: a new upload waits, shown as waiting, until Resume.
    await page.locator('#pause', { hasText: 'Pause' }).click();
    await page.locator('#pause', { hasText: 'Resume' }).waitFor();
    assert.equal((await queue()).paused, true);
    const held = await upload('held.jpg', photo);
    await page.locator('#n-waiting', { hasText: /^1$/ }).waitFor({ timeout: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal((await (await fetch(`${pixdrop.url}/jobs/${held}`)).json()).state, 'queued');
    await page.locator('#pause').click();
    await page.locator('#pause', { hasText: 'Pause' }).waitFor();
    await page.locator(`#recent tr[data-id="${held}"][data-state="completed"]`).waitFor({ timeout: 60_000 });

    // Delete the failed job from its row: two clicks, then it is gone, from the list and for good.
    await failedRow.locator('button.delete').click();
    await failedRow.locator('button.delete', { hasText: 'Delete for good?' }).waitFor();
    await failedRow.locator('button.delete').click();
    await failedRow.waitFor({ state: 'detached', timeout: 10_000 });
    await page.locator(`#recent tr[data-id="${broken}"][data-state="deleted"]`).waitFor({ timeout: 10_000 });
    assert.equal((await fetch(`${pixdrop.url}/jobs/${broken}`)).status, 404);
    await page.locator('#no-failed').waitFor();

    await screenshot(page, 'admin.png');
    assert.deepEqual(problems, []);
  } catch (error) {
    await screenshot(page, 'failure-admin.png').catch(() => {});
    console.error(pixdrop.log());
    throw error;
  } finally {
    await context.close();
  }
});

test('without an administrator the dashboard asks for one and shows nothing', async () => {
  // The same page against a pixdrop whose admin API is closed: the refusal, in words.
  const closed = await Pixdrop.create();
  const context = await browser.newContext({ baseURL: closed.url });
  const page = await context.newPage();
  try {
    await page.goto('/admin');
    await page.locator('#signin').waitFor({ timeout: 15_000 });
    assert.match(await page.locator('#signin-why').textContent(), /admin/i);
    assert.equal(await page.locator('#board').isHidden(), true);
  } finally {
    await context.close();
    try {
      await closed.stop();
      closed.cleanUp();
    } finally {
      closed.kill();
    }
  }
});
