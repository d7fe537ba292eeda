// A server that lets a socket watch fewer jobs than the page has running: the page is refused the
// rest, asks about them over HTTP instead, and still sees every photo through to done.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { PHOTOS_DIR, dropFiles, fileFrom, openPage, row, screenshot, withPixdropAndBrowser } from './browser.js';

const PHOTOS = ['GreenMeadow.jpg', 'FreshFlower.jpg', 'Dune.jpg'];

let pixdrop;
let browser;

withPixdropAndBrowser({ env: { PIXDROP__WEBSOCKET__MAX_SUBSCRIPTIONS: '1' } }, (started, launched) => {
  pixdrop = started;
  browser = launched;
});

test('jobs the socket may not watch are followed by polling, to the end', async () => {
  const refusals = [];
  const { context, page, problems } = await openPage(browser, pixdrop.url, {}, (page) => {
    page.on('websocket', (ws) => ws.on('framereceived', ({ payload }) => {
      if (String(payload).includes('"too-many-subscriptions"')) refusals.push(payload);
    }));
  });
  const polls = new Map();
  page.on('request', (request) => {
    const id = /\/jobs\/([^/]+)$/.exec(request.url());
    if (request.method() === 'GET' && id) polls.set(id[1], (polls.get(id[1]) || 0) + 1);
  });
  try {
    await dropFiles(page, PHOTOS.map((name) => fileFrom(path.join(PHOTOS_DIR, name))));
    for (const name of PHOTOS) {
      await row(page, name).and(page.locator('[data-state="completed"]')).waitFor({ timeout: 60_000 });
      await row(page, name).locator('img[src^="/media/variants/"]').waitFor();
    }
    assert.ok(refusals.length >= 1, 'the server refused some subscriptions');
    // A watched job is read over HTTP once, when it completes; a polled one more often.
    const polled = [...polls.values()].filter((n) => n >= 2);
    assert.ok(polled.length >= 1, `refused jobs were asked about over HTTP (${JSON.stringify([...polls])})`);
    assert.deepEqual(problems, []);
  } catch (error) {
    await screenshot(page, 'failure-subscriptions.png').catch(() => {});
    console.error(pixdrop.log());
    throw error;
  } finally {
    await context.close();
  }
});
