// The page against the real pixdrop in headless Chromium: drops, the picker from the keyboard,
// refusals, upload progress and cancel, a failing job and its retry, the screenshots. One pixdrop
// (with its own redis-server) and one browser serve every test here; each test has a fresh page.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import {
  PHOTOS_DIR, dropFiles, fileFrom, fileOf, openPage, row, screenshot, withPixdropAndBrowser,
} from './browser.js';

// Small-ish photos from Debian's mate-backgrounds: real JPEGs, quick to process.
const PHOTOS = ['GreenMeadow.jpg', 'FreshFlower.jpg', 'Dune.jpg'];
// Bigger ones, for uploads slow enough to watch under a throttled network.
const BIG_PHOTOS = ['Blinds.jpg', 'RainDrops.jpg', 'Wood.jpg', 'Storm.jpg'];
const PROCESSED_MS = 60_000;

let pixdrop;
let browser;
let limits;

withPixdropAndBrowser({}, async (started, launched) => {
  pixdrop = started;
  browser = launched;
  limits = await (await fetch(`${pixdrop.url}/limits`)).json();
});

/** A test that, when it fails, leaves a screenshot and prints pixdrop's log. */
function e2e(name, body) {
  test(name, async (t) => {
    const opened = [];
    const open = async (options, prepare) => {
      const session = await openPage(browser, pixdrop.url, options, prepare);
      opened.push(session);
      return session;
    };
    try {
      await body({ t, open });
    } catch (error) {
      for (const [i, { page }] of opened.entries()) {
        const slug = name.replace(/\W+/g, '-').slice(0, 60);
        await screenshot(page, `failure-${slug}-${i}.png`).catch(() => {});
      }
      console.error(pixdrop.log());
      throw error;
    } finally {
      for (const { context } of opened) await context.close();
    }
  });
}

function photo(name) {
  return fileFrom(path.join(PHOTOS_DIR, name));
}

/** A JPEG whose header passes the type check but whose data ends early: it fails for good. */
function brokenJpeg(name) {
  const bytes = fs.readFileSync(path.join(PHOTOS_DIR, 'FreshFlower.jpg')).subarray(0, 3000);
  return fileOf(name, bytes, 'image/jpeg');
}

async function announcements(page) {
  return page.locator('#announcer p').allTextContents();
}

async function waitForAnnouncement(page, pattern, count = 1) {
  await page.waitForFunction(
    ([source, flags, wanted]) => {
      const re = new RegExp(source, flags);
      const said = [...document.querySelectorAll('#announcer p')].map((p) => p.textContent);
      return said.filter((text) => re.test(text)).length >= wanted;
    },
    [pattern.source, pattern.flags, count],
    { timeout: PROCESSED_MS },
  );
}

/** Waits for the row to be done and checks its thumbnail loaded and every variant is linked. */
async function assertDone(page, name) {
  const done = row(page, name).and(page.locator('[data-state="completed"]'));
  await done.waitFor({ timeout: PROCESSED_MS });
  // The page swaps its local preview for a new <img> of the server's thumbnail once that has
  // loaded, which may be after the row says done: wait for that element, not the preview's.
  const img = done.locator('.file-media img[src^="/media/"]');
  await img.waitFor({ timeout: 15_000 });
  await page.waitForFunction(
    (el) => el.complete && el.naturalWidth > 0,
    await img.elementHandle(),
    { timeout: 15_000 },
  );
  const src = await img.getAttribute('src');
  assert.match(src, /^\/media\/variants\/[^/]+\/[\w-]+\.webp$/, `${name}'s thumbnail is a variant`);
  assert.equal(await img.getAttribute('alt'), `Thumbnail of ${name}`);

  const links = done.locator('.file-variants a');
  const hrefs = await links.evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  const texts = await links.allTextContents();
  for (const variant of limits.variants) {
    const i = hrefs.findIndex((href) => href.endsWith(`/${variant.name}.webp`));
    assert.ok(i >= 0, `${name} links its ${variant.name} variant (links: ${hrefs.join(', ')})`);
    // Name, dimensions and a human-readable size.
    assert.match(texts[i], new RegExp(`^${variant.name} \\d+×\\d+ · [\\d.]+ (B|KB|MB)$`));
  }
  return { src, hrefs };
}

e2e('the page is served with its assets under a strict Content-Security-Policy', async () => {
  const page = await fetch(`${pixdrop.url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  const csp = page.headers.get('content-security-policy') || '';
  assert.match(csp, /script-src 'self'/, `CSP: ${csp}`);
  assert.match(csp, /style-src 'self'/, `CSP: ${csp}`);
  for (const [asset, type] of [['app.js', /javascript/], ['rows.js', /javascript/], ['app.css', /^text\/css/]]) {
    const response = await fetch(`${pixdrop.url}/static/${asset}`);
    assert.equal(response.status, 200, asset);
    assert.match(response.headers.get('content-type'), type, asset);
  }
});

e2e('three photos and a text file dropped at once give three thumbnails and one clear refusal', async ({ open }) => {
  const { page, problems } = await open();
  const uploads = [];
  page.on('request', (request) => {
    if (request.method() === 'POST' && request.url().endsWith('/upload')) uploads.push(request);
  });

  await dropFiles(page, [
    ...PHOTOS.map(photo),
    fileOf('notes.txt', 'shopping: milk, eggs\n', 'text/plain'),
  ]);

  const refused = row(page, 'notes.txt');
  await refused.waitFor();
  assert.equal(await refused.getAttribute('data-state'), 'rejected');
  assert.equal(
    await refused.locator('.file-reason').textContent(),
    'notes.txt is not an image pixdrop accepts (JPEG, PNG, GIF, WebP, BMP, TIFF)',
  );
  assert.equal(await refused.getByRole('button', { name: /^Retry/ }).count(), 0,
    'a file refused for its type has nothing to retry');

  for (const name of PHOTOS) await assertDone(page, name);
  for (const name of PHOTOS) {
    await waitForAnnouncement(page, new RegExp(`^${name} done: ${limits.variants.length} variants$`));
  }
  const said = await announcements(page);
  for (const name of PHOTOS) assert.ok(said.includes(`${name} uploaded`), said.join(' | '));
  assert.ok(said.some((text) => text.startsWith('notes.txt is not an image')), said.join(' | '));

  assert.equal(uploads.length, PHOTOS.length, 'the text file was never sent');
  assert.equal(await page.locator('#summary').textContent(), '4 files · 3 done · 1 not accepted');

  // The links lead to real WebP files.
  const href = await row(page, PHOTOS[0]).locator('.file-variants a').first().getAttribute('href');
  const variant = await fetch(`${pixdrop.url}${href}`);
  assert.equal(variant.status, 200);
  assert.equal(variant.headers.get('content-type'), 'image/webp');

  await screenshot(page, 'upload.png');
  assert.deepEqual(problems, []);
});

e2e('files pixdrop cannot take are explained in words, before sending or from the server', async ({ open }) => {
  const { page, problems } = await open();
  const uploads = [];
  page.on('request', (request) => {
    if (request.method() === 'POST' && request.url().endsWith('/upload')) uploads.push(request);
  });
  // Made in the page: 61 MB is too much to carry over the protocol for nothing.
  const dataTransfer = await page.evaluateHandle(() => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([new Uint8Array(61 * 1024 * 1024)], 'huge.jpg', { type: 'image/jpeg' }));
    transfer.items.add(new File([], 'empty.png', { type: 'image/png' }));
    // Named and typed like a photo, but text: only the server's sniffing can tell.
    transfer.items.add(new File(['just words\n'], 'fake.jpg', { type: 'image/jpeg' }));
    return transfer;
  });
  await page.locator('#drop').dispatchEvent('drop', { dataTransfer });

  const reason = (name) => row(page, name).locator('.file-reason');
  assert.equal(await reason('huge.jpg').textContent(), 'huge.jpg is 61 MB; the limit is 50 MB');
  assert.equal(await reason('empty.png').textContent(), 'empty.png is empty');
  const fake = row(page, 'fake.jpg').and(page.locator('[data-state="failed"]'));
  await fake.waitFor();
  assert.match(await reason('fake.jpg').textContent(), /^fake\.jpg looks like text\/plain; accepted are JPEG/);
  // The server judged the bytes themselves: sending them again cannot help.
  assert.equal(await fake.getByRole('button', { name: /^Retry/ }).count(), 0);
  await waitForAnnouncement(page, /^fake\.jpg failed: fake\.jpg looks like text\/plain/);
  assert.equal(uploads.length, 1, 'only the file that passed the checks was sent');
  assert.deepEqual(problems, []);
});

e2e('an image pasted from the clipboard is uploaded under a name of its own', async ({ open }) => {
  const { page, problems } = await open();
  // What a screenshot paste gives: a PNG called image.png.
  await page.evaluate(async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 640;
    canvas.height = 400;
    const g = canvas.getContext('2d');
    g.fillStyle = '#4f46e5';
    g.fillRect(0, 0, 640, 400);
    g.fillStyle = '#fbbf24';
    g.beginPath();
    g.arc(200, 160, 80, 0, Math.PI * 2);
    g.fill();
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
    const clipboardData = new DataTransfer();
    clipboardData.items.add(new File([blob], 'image.png', { type: 'image/png' }));
    document.dispatchEvent(new ClipboardEvent('paste', { clipboardData, bubbles: true, cancelable: true }));
  });
  const name = await page.locator('li.file .file-name').first().textContent();
  assert.match(name, /^pasted-\d{6}\.png$/);
  await assertDone(page, name);
  assert.deepEqual(problems, []);
});

e2e('a corrupt JPEG fails with its reason, and its retry button runs it again', async ({ open }) => {
  const { page, problems } = await open();
  await dropFiles(page, [brokenJpeg('broken.jpg')]);

  const broken = row(page, 'broken.jpg');
  await broken.and(page.locator('[data-state="failed"]')).waitFor({ timeout: PROCESSED_MS });
  const reason = /the JPEG file is incomplete/;
  assert.match(await broken.locator('.file-reason').textContent(), reason);
  await waitForAnnouncement(page, /^broken\.jpg failed: the JPEG file is incomplete/);

  const retry = broken.getByRole('button', { name: 'Retry broken.jpg' });
  assert.ok(await retry.isVisible(), 'a failed job offers a retry');
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && /\/jobs\/[^/]+\/retry$/.test(r.url())),
    retry.click(),
  ]);
  assert.equal(answer.status(), 202);
  await waitForAnnouncement(page, /^broken\.jpg queued again$/);
  // It runs again, and fails again, for the same reason.
  await waitForAnnouncement(page, /^broken\.jpg failed: the JPEG file is incomplete/, 2);
  await broken.and(page.locator('[data-state="failed"]')).waitFor();
  assert.match(await broken.locator('.file-reason').textContent(), reason);
  assert.ok(await retry.isVisible());
  assert.deepEqual(problems, []);
});

e2e('the keyboard reaches the drop zone, shows focus, and Enter opens the picker', async ({ open }) => {
  // Catching file choosers from the start: switched on later, the first one may slip past.
  const { page, problems } = await open({}, (p) => p.on('filechooser', () => {}));
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'picker');
  const outline = await page.locator('#drop').evaluate((el) => getComputedStyle(el).outlineStyle);
  assert.notEqual(outline, 'none', 'the focused drop zone shows it');
  assert.equal(await page.getByLabel(/choose files/).count(), 1, 'the picker has a real label');

  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.keyboard.press('Enter')]);
  assert.ok(chooser.isMultiple());
  await chooser.setFiles(path.join(PHOTOS_DIR, 'GreenMeadow.jpg'));
  await assertDone(page, 'GreenMeadow.jpg');

  // Space opens it too.
  await page.locator('#picker').focus();
  const [again] = await Promise.all([page.waitForEvent('filechooser'), page.keyboard.press('Space')]);
  await again.setFiles([]);
  assert.deepEqual(problems, []);
});

e2e('uploads take turns three at a time, show bytes sent, and cancel mid-upload', async ({ open }) => {
  const { page, context, problems } = await open();
  // Slow the uploads down enough to watch them.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: 128 * 1024,
  });
  await dropFiles(page, BIG_PHOTOS.map(photo));

  const uploading = page.locator('li.file[data-state="uploading"]');
  const waiting = page.locator('li.file[data-state="waiting"]');
  await waiting.first().waitFor();
  assert.equal(await uploading.count(), 3, 'three uploads at once');
  assert.equal(await waiting.count(), 1, 'the fourth waits its turn');

  // Bytes sent show as a percentage and in words.
  const first = row(page, BIG_PHOTOS[0]);
  const bar = first.locator('progress');
  await page.waitForFunction((el) => el.value > 0 && el.value < 100, await bar.elementHandle());
  assert.match(await first.locator('.file-detail').textContent(), /^\d+% · [\d.]+ (KB|MB) of 1\.1 MB$/);
  assert.match(await bar.getAttribute('aria-label'), /^Upload of Blinds\.jpg$/);

  await first.getByRole('button', { name: `Cancel ${BIG_PHOTOS[0]}` }).click();
  await first.and(page.locator('[data-state="cancelled"]')).waitFor();
  assert.equal(await first.locator('.file-detail').textContent(), 'Upload cancelled');
  await waitForAnnouncement(page, new RegExp(`^${BIG_PHOTOS[0]} upload cancelled$`));
  // Its slot goes to the one that waited.
  await row(page, BIG_PHOTOS[3]).and(uploading).waitFor();

  for (const name of BIG_PHOTOS.slice(1)) {
    await row(page, name).getByRole('button', { name: `Cancel ${name}` }).click();
  }
  await page.waitForFunction(() => document.querySelectorAll('li.file[data-state="cancelled"]').length === 4);

  // A cancelled upload can be sent again, at full speed this time.
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1,
  });
  await first.getByRole('button', { name: `Retry ${BIG_PHOTOS[0]}` }).click();
  await assertDone(page, BIG_PHOTOS[0]);
  assert.deepEqual(problems, []);
});

e2e('the page reads well in dark mode and on a phone', async ({ open }) => {
  const files = () => [
    photo('GreenMeadow.jpg'),
    photo('FreshFlower.jpg'),
    brokenJpeg('scan-0042.jpg'),
    fileOf('notes.txt', 'not a photo\n', 'text/plain'),
  ];
  const settle = async (page) => {
    await assertDone(page, 'GreenMeadow.jpg');
    await assertDone(page, 'FreshFlower.jpg');
    await row(page, 'scan-0042.jpg').and(page.locator('[data-state="failed"]'))
      .waitFor({ timeout: PROCESSED_MS });
  };

  const dark = await open({ colorScheme: 'dark' });
  await dropFiles(dark.page, files());
  await settle(dark.page);
  const background = await dark.page.locator('#card').evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.notEqual(background, 'rgb(255, 255, 255)', 'the card follows prefers-color-scheme');
  await screenshot(dark.page, 'upload-dark.png');

  const phone = await open({
    viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
  });
  await dropFiles(phone.page, files());
  await settle(phone.page);
  const width = await phone.page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `nothing overflows a 375 px screen (scroll width ${width})`);
  await screenshot(phone.page, 'upload-mobile.png');
  assert.deepEqual([...dark.problems, ...phone.problems], []);
});

e2e('a finished upload is deleted from its row after a confirmation, and its files with it', async ({ open }) => {
  const { page, problems } = await open();
  // A photo no other test uploads: its original is this upload's alone, so it goes too.
  const name = 'LadyBird.jpg';
  await dropFiles(page, [photo(name)]);
  const { src, hrefs } = await assertDone(page, name);
  const done = row(page, name);

  // Asking first: "Keep" changes nothing.
  await done.getByRole('button', { name: `Delete ${name} from the server` }).click();
  const confirm = done.getByRole('group', { name: `Confirm deleting ${name}` });
  await confirm.waitFor();
  assert.equal(await confirm.locator('.file-confirm-text').textContent(),
    'Delete this upload and its variants for good?');
  await screenshot(page, 'delete-confirm.png');
  await confirm.getByRole('button', { name: `Keep ${name}` }).click();
  assert.equal(await confirm.isHidden(), true);
  assert.equal((await fetch(`${pixdrop.url}${src}`)).status, 200);

  const deletes = [];
  page.on('request', (request) => {
    if (request.method() === 'DELETE') deletes.push({ url: request.url(), auth: request.headers().authorization });
  });
  await done.getByRole('button', { name: `Delete ${name} from the server` }).click();
  await confirm.getByRole('button', { name: `Delete ${name} for good` }).click();
  await waitForAnnouncement(page, new RegExp(`^${name} deleted$`));
  assert.equal(await row(page, name).count(), 0, 'the row is gone');
  assert.equal(deletes.length, 1);
  assert.match(deletes[0].url, /\/uploads\/[\w-]+$/, 'no token in the URL');
  assert.match(deletes[0].auth || '', /^Bearer [\w-]{43}$/, 'without sign-in the token proves it');
  for (const href of hrefs) {
    assert.equal((await fetch(`${pixdrop.url}${href}`)).status, 404, `${href} is gone`);
  }
  assert.deepEqual(problems, []);
});
