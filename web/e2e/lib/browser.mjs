// Debian's Chromium, driven by playwright-core (no browser download): headless, no sandbox when
// run as root (CI), background networking off so the browser talks only to the console.
// `chromium.launch` gives every run a fresh temporary profile (user-data-dir).

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.KUBOARD_CHROMIUM ?? '/usr/bin/chromium';

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: install the Debian package chromium (scripts/install-deps.sh test)`,
    );
  }
  const args = [
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-default-apps',
    '--disable-extensions',
  ];
  if (process.getuid() === 0) args.push('--no-sandbox');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}

/**
 * A browser context whose language is `locale`, recording every Content-Security-Policy violation
 * and page error, so that a test can fail on them: the console must work under its own policy.
 */
export async function newContext(browser, { locale = 'zh-CN' } = {}) {
  const context = await browser.newContext({ locale, viewport: { width: 1366, height: 820 } });
  // Runs through the DevTools protocol, which the page's CSP does not govern.
  await context.addInitScript(() => {
    window.__kuboardCspViolations = [];
    document.addEventListener('securitypolicyviolation', (event) => {
      window.__kuboardCspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
    });
  });
  context.pageErrors = [];
  context.on('page', (page) => watchPage(context, page));
  return context;
}

function watchPage(context, page) {
  page.on('pageerror', (error) => context.pageErrors.push(`${page.url()}: ${error.message}`));
}

export async function cspViolations(page) {
  return page.evaluate(() => window.__kuboardCspViolations ?? []);
}

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core on the page as it is: the serious and critical violations (an empty list passes).
 * The script is evaluated through the DevTools protocol, not added as a script element, so the
 * console's CSP stays as it is served.
 */
export async function seriousAccessibilityViolations(page) {
  const loaded = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!loaded) await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      help: violation.help,
      targets: violation.nodes.slice(0, 5).map((node) => node.target.join(' ')),
    }));
  });
  return violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical');
}
