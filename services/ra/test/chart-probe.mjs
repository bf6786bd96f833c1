// Renders ra's chart page in the system's chromium (puppeteer-core, no browser download) and
// prints what the page shows as JSON. A separate process: puppeteer-core is an ES module.
import puppeteer from 'puppeteer-core';

const [url, executablePath] = process.argv.slice(2);
const browser = await puppeteer.launch({ executablePath, headless: true, acceptInsecureCerts: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
  await page.goto(url, { waitUntil: 'load', timeout: 60_000 });
  await page.waitForSelector('body[data-ready]', { timeout: 60_000 });
  const rows = (selector) => page.$$eval(selector, (trs) => trs.map((tr) => Object.fromEntries([...tr.querySelectorAll('td')].map((td) => [td.getAttribute('data-field'), Number(td.getAttribute('data-value'))]))));
  const bars = (selector) => page.$$eval(selector, (rects) => rects.map((r) => ({ year: Number(r.getAttribute('data-year')), series: r.getAttribute('data-series'), value: Number(r.getAttribute('data-value')), height: Number(r.getAttribute('height')) })));
  const result = {
    ready: await page.$eval('body', (b) => b.getAttribute('data-ready')),
    status: await page.$eval('#status', (s) => s.textContent),
    errors,
    usageTable: await rows('#usage-table tbody tr'),
    genderTable: await rows('#gender-table tbody tr'),
    usesBars: await bars('#uses-chart rect'),
    systemsBars: await bars('#systems-chart rect'),
    genderBars: await bars('#gender-chart rect'),
  };
  process.stdout.write(JSON.stringify(result));
} finally {
  await browser.close();
}
