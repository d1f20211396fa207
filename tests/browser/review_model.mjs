// The review page's GLB viewer in a real browser (headless Debian chromium via playwright-core).
// Usage: node review_model.mjs URL SCREENSHOT.png
// Opens the page (its only asset is a .glb), waits until the viewer has drawn the model or says
// why it cannot, drags the model round, screenshots the page and prints
// `review_model: {"triangles": N, "error": "...", "changed": true|false}`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error('usage: node review_model.mjs URL SCREENSHOT.png');
  process.exit(2);
}
const { chromium } = await import('playwright-core');
const profile = mkdtempSync(join(tmpdir(), 'studio-review-model-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.STUDIO_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--enable-unsafe-swiftshader', '--use-angle=swiftshader'],
  });
  const page = context.pages()[0] || await context.newPage();
  await page.goto(url);
  await page.waitForSelector('#model-view[data-triangles], #model-error', { timeout: 30000 });
  const result = await page.evaluate(() => {
    const c = document.getElementById('model-view');
    const e = document.getElementById('model-error');
    return { triangles: c ? Number(c.dataset.triangles) : 0, error: e ? e.textContent : '' };
  });
  if (!result.error) {
    // Drag: the picture must change (the model turns).
    const box = await page.locator('#model-view').boundingBox();
    const before = await page.locator('#model-view').screenshot();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2 + 120, box.y + box.height / 2 + 30, { steps: 6 });
    await page.mouse.up();
    const after = await page.locator('#model-view').screenshot();
    result.changed = !before.equals(after);
  }
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log('review_model: ' + JSON.stringify(result));
} catch (e) {
  console.error('review_model: ' + e.message);
  process.exitCode = 1;
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
