// Drives the daemon's dashboard in headless Chromium as a person would, for tests/dashboard.rs:
//
//   node tests/browser/dashboard.mjs URL LIST.png PAGE.png
//
// In a 1280 px window: the list renders with the product's columns; Run on `Orders` starts a run whose
// status then shows; its Run History opens its page: the runs as a chart, a run's objects (opened from the
// keyboard), the rejected rows, which a reason filter narrows, Replay rejects saying how a replay went, the
// next run's preview and the configuration; `Catalog`'s page shows what its run would change in Stripe;
// Rollback on `Customers` and
// Remove on `Products` (each confirmed) take effect; Run on `Broken` fails and its page shows the error and
// marks the run in the chart; grouping by status groups. Prints what it saw (and what stuck out past 1280
// px in each view) as one JSON line; exits 1 naming the step that failed.
import { chromium } from "playwright-core";

const [url, listShot, pageShot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 30000;
const WIDTH = 1280;

const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
let step = "open the dashboard";
try {
  const page = await browser.newPage({ viewport: { width: WIDTH, height: 800 } });
  page.setDefaultTimeout(TIMEOUT);
  page.on("dialog", (dialog) => dialog.accept());
  await page.goto(url);
  // What sticks out past the window's right edge, by selector: nothing, when a view fits 1280 px.
  const overflow = () => page.evaluate(() => {
    const out = [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5);
    return { scrollWidth: document.documentElement.scrollWidth, over: out.slice(0, 5).map((e) => e.tagName + (e.id ? "#" + e.id : "")) };
  });

  step = "the list renders";
  await page.waitForSelector('#dataflows tbody tr[data-name="Orders"]');
  const headers = await page.$$eval("#dataflows thead th", (ths) => ths.map((th) => th.textContent));
  const names = await page.$$eval("#dataflows tbody tr[data-name]", (rows) => rows.map((r) => r.dataset.name));
  const row = (name) => `#dataflows tbody tr[data-name="${name}"]`;
  const status = (name) => page.textContent(`${row(name)} .status`);
  const statusBefore = await status("Orders");

  step = "Run starts a run whose status then shows";
  await page.click(`${row("Orders")} button:text-is("Run")`);
  await page.waitForFunction((selector) => document.querySelector(selector)?.textContent === "succeeded",
    `${row("Orders")} .status`);
  const ordersRows = await page.textContent(`${row("Orders")} td:nth-child(4)`);
  const listLayout = await overflow();

  step = "Run History opens the dataflow's page, with its runs as a chart";
  await page.click(`${row("Orders")} button:text-is("Run History")`);
  await page.waitForSelector("#chart svg rect.bar");
  const address = new URL(page.url()).hash;
  const bars = await page.$$eval("#chart svg rect.bar", (rects) => rects.map((r) => r.dataset.status));

  step = "a run's objects, from the keyboard";
  await page.focus("#runs tbody button");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#objects tbody td.key");
  const objects = await page.$$eval("#objects tbody tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));

  step = "the rejected rows, narrowed by reason";
  await page.waitForSelector("#rejects tbody td.raw");
  const rejected = await page.$$eval("#rejects tbody tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  await page.fill("#reject-reason", "no reason like this");
  await page.waitForFunction(() => document.querySelector("#rejects tbody td")?.textContent === "no rejected rows");
  await page.fill("#reject-reason", "");

  step = "Replay rejects tries the rejected rows again and says how it went";
  await page.click("#replay");
  await page.waitForFunction(() => document.querySelector("#message")?.textContent.includes("replay"));
  const replayed = await page.textContent("#message");

  step = "the next run's preview";
  await page.click("#preview-load");
  await page.waitForSelector("#preview-objects tbody td.key");
  const preview = await page.$$eval("#preview-objects tbody tr", (rows) => rows.map((r) => [r.cells[0].textContent, r.cells[3].textContent]));
  const previewRecords = await page.textContent("#preview-records");

  step = "the configuration, read-only";
  const config = await page.textContent("#config");
  const pageLayout = await overflow();
  await page.screenshot({ path: pageShot, fullPage: true });

  step = "back to the list";
  await page.click("#back");
  await page.waitForSelector("#list:not([hidden])");

  step = "Rollback takes the run back";
  const waitStatus = (name, wanted) => page.waitForFunction(
    ([selector, text]) => document.querySelector(selector)?.textContent === text, [`${row(name)} .status`, wanted]);
  await page.click(`${row("Customers")} button:text-is("Rollback")`);
  await waitStatus("Customers", "rolled back");

  step = "Remove deletes the tables";
  await page.click(`${row("Products")} button:text-is("Remove")`);
  await waitStatus("Products", "never run");
  const productsTables = await page.textContent(`${row("Products")} td:nth-child(4)`);

  step = "a Stripe sink's page shows what the next run would change there";
  await page.click(`${row("Catalog")} a`);
  await page.waitForSelector("#diff-section:not([hidden])");
  const catalogConfig = await page.textContent("#config");
  await page.click("#diff-load");
  await page.waitForSelector("#diff tbody td.changes");
  const diff = await page.$$eval("#diff tbody tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  const diffLayout = await overflow();
  await page.goBack();
  await page.waitForSelector("#list:not([hidden])");

  step = "a failed run's error, marked in the chart";
  await page.click(`${row("Broken")} button:text-is("Run")`);
  await page.waitForFunction((selector) => document.querySelector(selector)?.textContent === "failed",
    `${row("Broken")} .status`);
  await page.click(`${row("Broken")} button:text-is("Run History")`);
  await page.waitForSelector("#runs tbody td.error");
  const error = await page.textContent("#runs tbody td.error");
  const historyStatus = await page.textContent("#runs tbody .status");
  const failedMarks = await page.$$eval('#chart .mark[data-status="failed"]', (marks) => marks.map((m) => m.textContent));
  await page.click("#back");

  step = "grouping by status";
  await page.selectOption("#group", "status");
  await page.waitForSelector("#dataflows tbody tr.group");
  const groups = await page.$$eval("#dataflows tbody tr.group", (rows) => rows.map((r) => r.textContent));

  step = "the screenshot";
  await page.selectOption("#group", "");
  await page.waitForSelector("#dataflows tbody tr.group", { state: "detached" });
  await page.screenshot({ path: listShot, fullPage: true });
  console.log(JSON.stringify({ headers, names, statusBefore, ordersTables: ordersRows, productsTables, error,
    historyStatus, groups, rejected, replayed, address, bars, objects, preview, previewRecords, config,
    catalogConfig, diff, failedMarks, layout: { list: listLayout, page: pageLayout, diff: diffLayout } }));
} catch (e) {
  console.error(`dashboard: step "${step}" failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
