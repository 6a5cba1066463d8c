// What every page object shares: `data-testid` lookups and Element Plus controls.

export const TIMEOUT_MS = 15000;

export class BasePage {
  constructor(page, baseUrl) {
    this.page = page;
    this.baseUrl = baseUrl;
  }

  byTestId(id) {
    return this.page.locator(`[data-testid="${id}"]`);
  }

  /** Elements whose test id starts with `prefix`. */
  byTestIdPrefix(prefix) {
    return this.page.locator(`[data-testid^="${prefix}"]`);
  }

  async visible(id, timeout = TIMEOUT_MS) {
    const locator = this.byTestId(id).first();
    await locator.waitFor({ state: 'visible', timeout });
    return locator;
  }

  async click(id) {
    await (await this.visible(id)).click();
  }

  /** Fills an `el-input` (its test id is on the native input or textarea, or on a wrapper of it). */
  async fill(id, value) {
    const element = await this.visible(id);
    const tag = await element.evaluate((node) => node.tagName);
    const input =
      tag === 'INPUT' || tag === 'TEXTAREA' ? element : element.locator('input, textarea').first();
    await input.fill(value);
  }

  async text(id) {
    return (await (await this.visible(id)).innerText()).trim();
  }

  /** Picks the option labelled `label` of an `el-select` (its options open in a popper). */
  async choose(id, label) {
    await this.click(id);
    const option = this.page.locator('.el-select-dropdown__item:visible', { hasText: label }).first();
    await option.waitFor({ state: 'visible', timeout: TIMEOUT_MS });
    await option.click();
  }

  /**
   * After a dialog's submit: waits until `resultId` shows (or the dialog closes when `resultId` is
   * null); fails with the dialog's text (its API error) when it stays open instead.
   */
  async settled(resultId, dialogId, timeout = TIMEOUT_MS) {
    const deadline = Date.now() + timeout;
    while (Date.now() < deadline) {
      if (resultId && (await this.byTestId(resultId).first().isVisible())) return;
      if (!resultId && !(await this.byTestId(dialogId).first().isVisible())) return;
      await this.page.waitForTimeout(100);
    }
    const dialog = (
      await this.byTestId(dialogId)
        .first()
        .innerText()
        .catch(() => '')
    ).replace(/\s+/g, ' ');
    throw new Error(`${resultId ?? `closing ${dialogId}`} did not happen; the dialog shows: ${dialog}`);
  }

  async goto(path) {
    await this.page.goto(`${this.baseUrl}${path}`);
  }

  path() {
    return new URL(this.page.url()).pathname;
  }
}
