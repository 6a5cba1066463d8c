import { BasePage, TIMEOUT_MS } from './base-page.mjs';

export class ClustersPage extends BasePage {
  async importWithToken({ name, servers, token, ca }) {
    await this.click('cluster-import');
    await this.visible('cluster-import-dialog');
    await this.click('import-mode-token');
    await this.fill('import-name', name);
    await this.fill('import-server', servers.join(','));
    await this.fill('import-token', token);
    await this.fill('import-ca', ca);
    await this.click('import-submit');
  }

  row(name) {
    return this.byTestId(`cluster-row-${name}`);
  }

  /** `[{ url, state }]` of the cluster's endpoint tags, in order. */
  async endpoints(name) {
    const tags = this.byTestIdPrefix(`cluster-endpoint-${name}-`);
    return tags.evaluateAll((nodes) =>
      nodes.map((node) => ({ url: node.dataset.url, state: node.dataset.state })),
    );
  }

  /** Waits until every endpoint of the cluster shows one of `states`. */
  async waitForEndpointStates(name, count, states, timeout = TIMEOUT_MS * 2) {
    await this.page.waitForFunction(
      ({ prefix, count, states }) => {
        const tags = [...document.querySelectorAll(`[data-testid^="${prefix}"]`)];
        return tags.length === count && tags.every((tag) => states.includes(tag.dataset.state));
      },
      { prefix: `cluster-endpoint-${name}-`, count, states },
      { timeout },
    );
    return this.endpoints(name);
  }

  async rowCount() {
    return this.byTestIdPrefix('cluster-row-').count();
  }
}
