import { BasePage } from './base-page.mjs';

export class UsersPage extends BasePage {
  async createUser({ username, password, role }) {
    await this.click('users-tab-users');
    await this.click('user-create');
    await this.visible('user-create-dialog');
    await this.fill('user-create-username', username);
    await this.fill('user-create-password', password);
    if (role) await this.choose('user-create-role', role);
    await this.click('user-create-submit');
    await this.settled(`user-row-${username}`, 'user-create-dialog');
  }

  /** Binds a user to a cluster and namespace with a role (labels as the page shows them). */
  async bindUser({ username, cluster, namespace, roleLabel }) {
    await this.click('users-tab-bindings');
    await this.click('binding-create');
    await this.visible('binding-dialog');
    await this.click('binding-subject-kind-user');
    await this.fill('binding-subject-name', username);
    await this.choose('binding-cluster', cluster);
    await this.fill('binding-namespace', namespace);
    await this.choose('binding-role', roleLabel);
    await this.click('binding-submit');
    await this.settled(null, 'binding-dialog');
    const row = this.page.locator(`[data-testid^="binding-row-"][data-subject="user:${username}"]`).first();
    await row.waitFor({ state: 'visible' });
    return row;
  }

  /** The Kubernetes identity the console shows for a user in a cluster and namespace. */
  async identity({ username, cluster, namespace }) {
    await this.click('users-tab-identity');
    await this.choose('identity-user', username);
    await this.choose('identity-cluster', cluster);
    await this.fill('identity-namespace', namespace);
    await this.click('identity-show');
    await this.visible('identity-result');
    return {
      user: await this.text('identity-impersonate-user'),
      groups: await this.text('identity-groups'),
      text: await this.text('identity-result'),
    };
  }
}
