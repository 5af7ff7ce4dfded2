// Drives the "ETL pipelines" panel in headless Chromium (playwright-core + Debian's chromium).
// Started by tests/e2e/test_panel.py, which starts the lab and reads the JSON lines printed here.
//
// Environment: LAB_URL, LAB_TOKEN, CHROMIUM, SCREENSHOT (a PNG path to write), STEPS (comma list:
// "run" and/or "schedule"), SCHEDULE_CRON, SCHEDULE_TZ.
import { chromium } from 'playwright-core';

const { LAB_URL, LAB_TOKEN, CHROMIUM, SCREENSHOT } = process.env;
const STEPS = (process.env.STEPS || 'run').split(',');
const RUN_DEADLINE_MS = 120_000;

function report(event, data = {}) {
  process.stdout.write(JSON.stringify({ event, ...data }) + '\n');
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
    '--disable-dev-shm-usage'
  ]
});
let exitCode = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 820 }, colorScheme: 'light' });
  const page = await context.newPage();
  page.on('pageerror', error => report('pageerror', { message: String(error) }));
  // The token in the URL logs the browser in (a cookie); from then on the panel's requests carry
  // that cookie and the XSRF token, as a user's would.
  await page.goto(`${LAB_URL}/lab?token=${LAB_TOKEN}`);
  await page.locator('#jp-main-dock-panel').waitFor({ timeout: 60_000 });

  const tab = page.locator('.jp-SideBar [data-id="etl-nb-panel"]');
  await tab.waitFor({ timeout: 30_000 });
  report('tab', { title: await tab.getAttribute('title') });
  await tab.click();
  const panel = page.locator('#etl-nb-panel');
  await panel.waitFor({ state: 'visible' });

  const pipeline = panel.locator('.etl-nb-pipeline[data-path="quickstart.ipynb"]');
  await pipeline.waitFor({ timeout: 30_000 });
  const nodes = pipeline.locator('.etl-nb-dag-node');
  await nodes.first().waitFor();
  report('pipeline', {
    steps: await nodes.evaluateAll(all => all.map(n => n.getAttribute('data-step'))),
    edges: await pipeline.locator('.etl-nb-dag-edge').count(),
    parameters: await pipeline
      .locator('.etl-nb-field input')
      .evaluateAll(all => all.map(i => [i.name, i.value]))
  });

  if (STEPS.includes('run')) {
    // Keyboard, as a user without a mouse would: focus the Run button and press Enter.
    const run = pipeline.locator('.etl-nb-run-button');
    await run.focus();
    await page.keyboard.press('Enter');
    const done = panel.locator('.etl-nb-run-list li.etl-nb-run').first();
    await panel
      .locator('.etl-nb-run-list li.etl-nb-status-success, .etl-nb-run-list li.etl-nb-status-failed')
      .first()
      .waitFor({ timeout: RUN_DEADLINE_MS });
    const status = await done.locator('.etl-nb-badge').innerText();
    await done.locator('.etl-nb-run-toggle').click();
    await done.locator('.etl-nb-steps').waitFor();
    const stepRows = await done
      .locator('.etl-nb-steps tbody tr')
      .evaluateAll(rows => rows.map(r => Array.from(r.querySelectorAll('td')).map(td => td.textContent)));
    await pipeline.locator('.etl-nb-dag-node.etl-nb-status-success').first().waitFor();
    report('run', {
      id: await done.getAttribute('data-run'),
      status,
      rows: await done.locator('.etl-nb-run-rows').innerText(),
      duration: await done.locator('.etl-nb-run-duration').innerText(),
      steps: stepRows,
      notebookLink: await done.locator('a.etl-nb-link').getAttribute('href'),
      successNodes: await pipeline.locator('.etl-nb-dag-node.etl-nb-status-success').count()
    });
  }

  if (STEPS.includes('schedule')) {
    const form = panel.locator('.etl-nb-schedule-form');
    await form.locator('select[name="notebook"]').selectOption('quickstart.ipynb');
    await form.locator('input[name="cron"]').fill(process.env.SCHEDULE_CRON || '0 6 * * *');
    await form.locator('input[name="tz"]').fill(process.env.SCHEDULE_TZ || 'Europe/Paris');
    await form.locator('button[type="submit"]').click();
    const row = panel.locator('.etl-nb-schedule').first();
    await row.waitFor({ timeout: 20_000 });
    report('schedule', { text: await row.innerText(), id: await row.getAttribute('data-schedule') });
  }

  if (SCREENSHOT) {
    // The notebook beside its panel: the path link opens it in the main area.
    await pipeline.locator('.etl-nb-path').click();
    await page.locator('.jp-NotebookPanel .jp-Cell').nth(5).waitFor({ timeout: 30_000 });
    const dismiss = panel.locator('.etl-nb-message button', { hasText: 'Dismiss' });
    if (await dismiss.count()) {
      await dismiss.click();
    }
    await page.mouse.move(900, 700); // no hover highlight in the picture
    await page.waitForTimeout(300); // let the last refresh paint
    await page.screenshot({ path: SCREENSHOT });
    report('screenshot', { path: SCREENSHOT });
  }
} catch (error) {
  report('error', { message: String(error && error.stack ? error.stack : error) });
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
