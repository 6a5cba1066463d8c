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
    return this.bind({ kind: 'user', name: username, cluster, namespace, roleLabel });
  }

  /** Binds a subject (`kind` user or group) to a cluster and namespace; answers the new row. */
  async bind({ kind, name, cluster, namespace, roleLabel }) {
    await this.click('users-tab-bindings');
    await this.click('binding-create');
    await this.visible('binding-dialog');
    await this.click(`binding-subject-kind-${kind}`);
    await this.fill('binding-subject-name', name);
    await this.choose('binding-cluster', cluster);
    await this.fill('binding-namespace', namespace);
    await this.choose('binding-role', roleLabel);
    await this.click('binding-submit');
    await this.settled(null, 'binding-dialog');
    const row = this.page.locator(`[data-testid^="binding-row-"][data-subject="${kind}:${name}"]`).first();
    await row.waitFor({ state: 'visible' });
    return row;
  }

  /** Sets a user's groups through the edit dialog (comma-separated, as typed). */
  async setGroups(username, groups) {
    await this.click('users-tab-users');
    await this.click(`user-edit-${username}`);
    await this.visible('user-edit-dialog');
    await this.fill('user-edit-groups', groups.join(','));
    await this.click('user-edit-submit');
    await this.settled(null, 'user-edit-dialog');
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
