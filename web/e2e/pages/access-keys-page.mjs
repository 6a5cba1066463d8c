import { BasePage } from './base-page.mjs';

export class AccessKeysPage extends BasePage {
  async create(name) {
    await this.click('access-key-create');
    await this.visible('access-key-dialog');
    await this.fill('access-key-name', name);
    await this.click('access-key-confirm');
    const key = await this.text('access-key-shown');
    await this.click('access-key-shown-close');
    await this.visible(`access-key-row-${name}`);
    return key;
  }
}
