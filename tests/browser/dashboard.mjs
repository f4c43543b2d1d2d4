// Drives the daemon's dashboard in headless Chromium as a person would, for tests/dashboard.rs:
//
//   node tests/browser/dashboard.mjs URL SCREENSHOT.png
//
// The list renders with the product's columns; Run on `Orders` starts a run whose status then shows;
// its Run History lists the run's rejected rows, which a reason filter narrows; Rollback on `Customers` and
// Remove on `Products` (each confirmed) take effect; Run on `Broken` fails and its Run History shows the
// error; grouping by status groups. Prints what it
// saw as one JSON line; exits 1 naming the step that failed.
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 30000;

const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
let step = "open the dashboard";
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 600 } });
  page.setDefaultTimeout(TIMEOUT);
  page.on("dialog", (dialog) => dialog.accept());
  await page.goto(url);

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

  step = "Run History lists the rejected rows, narrowed by reason";
  await page.click(`${row("Orders")} button:text-is("Run History")`);
  await page.waitForSelector("#rejects tbody td.raw");
  const rejected = await page.$$eval("#rejects tbody tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  await page.fill("#reject-reason", "no reason like this");
  await page.waitForFunction(() => document.querySelector("#rejects tbody td")?.textContent === "no rejected rows");

  step = "Rollback takes the run back";
  const waitStatus = (name, wanted) => page.waitForFunction(
    ([selector, text]) => document.querySelector(selector)?.textContent === text, [`${row(name)} .status`, wanted]);
  await page.click(`${row("Customers")} button:text-is("Rollback")`);
  await waitStatus("Customers", "rolled back");

  step = "Remove deletes the tables";
  await page.click(`${row("Products")} button:text-is("Remove")`);
  await waitStatus("Products", "never run");
  const productsTables = await page.textContent(`${row("Products")} td:nth-child(4)`);

  step = "Run History shows a failed run's error";
  await page.click(`${row("Broken")} button:text-is("Run")`);
  await page.waitForFunction((selector) => document.querySelector(selector)?.textContent === "failed",
    `${row("Broken")} .status`);
  await page.click(`${row("Broken")} button:text-is("Run History")`);
  await page.waitForSelector("#runs tbody td.error");
  const error = await page.textContent("#runs tbody td.error");
  const historyStatus = await page.textContent("#runs tbody .status");

  step = "grouping by status";
  await page.selectOption("#group", "status");
  await page.waitForSelector("#dataflows tbody tr.group");
  const groups = await page.$$eval("#dataflows tbody tr.group", (rows) => rows.map((r) => r.textContent));

  step = "the screenshot";
  await page.selectOption("#group", "");
  await page.waitForSelector("#dataflows tbody tr.group", { state: "detached" });
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ headers, names, statusBefore, ordersTables: ordersRows, productsTables, error,
    historyStatus, groups, rejected }));
} catch (e) {
  console.error(`dashboard: step "${step}" failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
