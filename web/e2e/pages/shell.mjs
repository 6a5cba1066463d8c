import { BasePage } from './base-page.mjs';

/** The top bar and navigation around every page after login. */
export class Shell extends BasePage {
  async navigate(item) {
    await this.click(`nav-${item}`);
  }

  async switchLanguage(language) {
    await this.click(`lang-${language}`);
    await this.page.waitForFunction(
      (id) => document.querySelector(`[data-testid="${id}"]`)?.getAttribute('aria-pressed') === 'true',
      `lang-${language}`,
    );
  }

  async userName() {
    return this.text('user-menu');
  }
}
