import { BasePage } from './base-page.mjs';

export class PasswordPage extends BasePage {
  async change(current, next, confirm = next) {
    await this.fill('password-current', current);
    await this.fill('password-new', next);
    await this.fill('password-confirm', confirm);
    await this.click('password-submit');
  }
}
