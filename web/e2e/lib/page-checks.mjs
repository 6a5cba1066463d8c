// The checks every page of an end-to-end suite gets: axe-core, the CSP, no script error, judged
// with the page at rest. Findings are kept per page, so that one page's finding does not hide what
// later steps show; the suite asserts them at its end.

import { cspViolations, seriousAccessibilityViolations } from './browser.mjs';

/**
 * Lets the page come to rest: the pointer off every control (a hovered button shows its hover
 * colours) and no finite animation running (a dialog fading in is half transparent, which axe
 * measures as low contrast). Endless ones, such as a loading spinner, are not waited for.
 */
export async function settle(page) {
  await page.mouse.move(0, 0);
  await page
    .waitForFunction(
      () =>
        document
          .getAnimations()
          .every(
            (animation) =>
              animation.playState !== 'running' || animation.effect?.getTiming().iterations === Infinity,
          ),
      null,
      { timeout: 5000 },
    )
    .catch(() => {
      console.log('# an animation was still running after 5 s; the page is checked as it is');
    });
}

/** Collects the findings of the pages of one browser context. */
export function pageChecker(context, page) {
  const visited = new Set();
  const findings = {};
  return {
    visited,
    findings,
    async check(name) {
      visited.add(name);
      await settle(page);
      const found = {
        accessibility: await seriousAccessibilityViolations(page),
        csp: await cspViolations(page),
        scriptErrors: [...context.pageErrors],
      };
      context.pageErrors.length = 0;
      if (found.accessibility.length + found.csp.length + found.scriptErrors.length > 0) {
        findings[name] = found;
      }
    },
  };
}
