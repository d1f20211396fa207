// The review page in a real browser: Debian's chromium, headless, driven by playwright-core.
// Usage: node review_browser.mjs URL SCREENSHOT.png
// With the keyboard only: accepts the first asset, rejects the second with a typed reason,
// requests a revision of a caption with a typed note, accepts one more; waits for each server
// reply; writes a full-page screenshot; prints a JSON summary line ("review_browser: {...}").
// Exits non-zero with a message on any failure (run by tests/browser/test_review_browser.cpp).
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHROMIUM = process.env.STUDIO_CHROMIUM || '/usr/bin/chromium';
const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error('usage: node review_browser.mjs URL SCREENSHOT.png');
  process.exit(2);
}
if (!existsSync(CHROMIUM)) {
  console.error(`review_browser: ${CHROMIUM} is missing: install Debian's chromium (scripts/install-deps.sh)`);
  process.exit(3);
}
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error('review_browser: playwright-core is missing: run ' +
                '`npm ci --prefix tests/browser --no-audit --no-fund` (scripts/test.sh does)\n' + e);
  process.exit(3);
}

const REASON = 'Logo cut off at the top edge';
const NOTE = 'Mention that it is dishwasher safe';
const profile = mkdtempSync(join(tmpdir(), 'studio-review-chromium-'));
let browser;
let page;
let failed = false;

function fail(message) {
  throw new Error(message);
}

// The asset in focus, as the page marks it.
async function current(page) {
  return page.evaluate(() => {
    const s = document.getElementById('current');
    return { workId: s.dataset.workId, kind: s.dataset.kind, revision: Number(s.dataset.revision),
             verdict: document.getElementById('verdict').dataset.verdict };
  });
}

// Presses `keys` (then types `text` and Enter, when given) and waits for POST /api/review.
async function decide(page, key, text) {
  const before = await current(page);
  await page.waitForTimeout(300);  // time on the asset, measured by the page
  const reply = page.waitForResponse(
      (r) => r.url().includes('/api/review') && r.request().method() === 'POST', { timeout: 30000 });
  await page.keyboard.press(key);
  if (text !== undefined) {
    const input = key === 'r' ? '#reason-input' : '#note-input';
    await page.waitForSelector(input, { state: 'visible', timeout: 5000 });
    await page.keyboard.type(text, { delay: 5 });
    await page.keyboard.press('Enter');
  }
  const res = await reply;
  const body = await res.json();
  if (res.status() !== 200) fail(`decision ${key} on ${before.workId}: HTTP ${res.status()}: ${JSON.stringify(body)}`);
  // The page reloads the run and moves on: wait for the decision to be shown in the sidebar.
  await page.waitForFunction(
      ([id, v]) => {
        const row = document.querySelector(`.asset-row[data-work-id="${id}"]`);
        return row && row.dataset.verdict === v && document.body.dataset.busy === '0';
      },
      [before.workId, body.verdict.verdict], { timeout: 15000 });
  return { asset: before, reply: body };
}

try {
  // A fresh profile folder (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = browser.pages()[0] || await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('requestfailed', (r) => problems.push('request failed: ' + r.url()));
  const external = [];
  page.on('request', (r) => { if (!r.url().startsWith(new URL(url).origin)) external.push(r.url()); });

  const resp = await page.goto(url, { waitUntil: 'load', timeout: 30000 });
  if (!resp || resp.status() !== 200) fail(`GET ${url}: HTTP ${resp && resp.status()}`);
  await page.waitForFunction(() => document.body.dataset.ready !== '0', null, { timeout: 15000 });
  if (await page.evaluate(() => document.body.dataset.ready) !== '1')
    fail('the page could not load the run: ' + await page.textContent('#asset-title'));
  const rows = await page.$$eval('.asset-row', (rs) => rs.map((r) => ({ id: r.dataset.workId, kind: r.dataset.kind })));
  if (rows.length < 4) fail(`expected at least 4 assets in the sidebar, found ${rows.length}`);

  // Help overlay opens and closes with the keyboard.
  await page.keyboard.press('?');
  if (!(await page.isVisible('#help'))) fail('? did not open the help');
  await page.keyboard.press('Escape');
  if (await page.isVisible('#help')) fail('Escape did not close the help');

  // j / k move the focus.
  const first = await current(page);
  await page.keyboard.press('j');
  if ((await current(page)).workId === first.workId) fail('j did not move to the next asset');
  await page.keyboard.press('k');
  if ((await current(page)).workId !== first.workId) fail('k did not move back');

  const decisions = [];
  decisions.push(await decide(page, 'a'));           // accept the first
  decisions.push(await decide(page, 'r', REASON));   // reject the second
  // Request a revision of a caption: move (j) to an undecided caption.
  for (let i = 0; i < rows.length; ++i) {
    const c = await current(page);
    if (c.kind === 'caption' && !c.verdict) break;
    await page.keyboard.press('j');
  }
  if ((await current(page)).kind !== 'caption') fail('no undecided caption left to send back');
  decisions.push(await decide(page, 'v', NOTE));
  // Accept one more (the page moved to the next undecided asset).
  const next = await current(page);
  if (next.verdict) fail('after a decision the page did not move to an undecided asset');
  decisions.push(await decide(page, 'a'));

  const counts = await page.evaluate(() => ({
    accept: Number(document.getElementById('count-accept').textContent),
    reject: Number(document.getElementById('count-reject').textContent),
    revise: Number(document.getElementById('count-revise').textContent),
    revise_command: document.getElementById('revise-box').hidden ? '' :
        document.getElementById('revise-command').textContent,
  }));
  if (counts.accept !== 2 || counts.reject !== 1 || counts.revise !== 1)
    fail('header counts after 4 decisions: ' + JSON.stringify(counts));
  if (!counts.revise_command.includes('--revise')) fail('the revision command is not shown');
  if (external.length) fail('requests outside the server: ' + external.join(', '));
  if (problems.length) fail(problems.join('\n'));

  await page.screenshot({ path: screenshot, fullPage: true });
  console.log('review_browser: ' + JSON.stringify({
    decisions: decisions.map((d) => ({ work_id: d.asset.workId, kind: d.asset.kind,
                                       verdict: d.reply.verdict.verdict,
                                       seconds: d.reply.verdict.seconds,
                                       report: d.reply.report })),
    counts, screenshot }));
} catch (e) {
  failed = true;
  console.error('review_browser: FAILED: ' + (e && e.stack ? e.stack : e));
  // The screen as it was when it failed, for the test output.
  if (page) await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
} finally {
  if (browser) await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
