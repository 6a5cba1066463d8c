import { BasePage } from './base-page.mjs';

export class LoginPage extends BasePage {
  async open() {
    await this.goto('/login');
    await this.visible('login-form');
  }

  async logIn(username, password, { remember = false } = {}) {
    await this.fill('login-username', username);
    await this.fill('login-password', password);
    if (remember) await this.click('login-remember');
    await this.click('login-submit');
  }
}
