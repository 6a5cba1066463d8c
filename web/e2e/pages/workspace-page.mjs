import { BasePage, TIMEOUT_MS } from './base-page.mjs';

/** The pages inside a cluster: overview, resource lists and details. */
export class WorkspacePage extends BasePage {
  /** The count an element shows in its `data-count`, once it is visible. */
  async count(id) {
    return Number(await (await this.visible(id)).getAttribute('data-count'));
  }

  /** The test ids of the kinds in the side navigation. */
  async navKinds() {
    await this.visible('workspace-nav-core-pods');
    return this.byTestIdPrefix('workspace-nav-').evaluateAll((nodes) =>
      nodes.map((node) => node.dataset.testid).filter((id) => id !== 'workspace-nav-overview'),
    );
  }

  /** Picks a namespace in the picker. */
  async pickNamespace(namespace) {
    await this.choose('workspace-namespace', namespace);
    await this.page.waitForFunction(
      (wanted) => new URL(window.location.href).searchParams.get('namespace') === wanted,
      namespace,
    );
  }

  /** The names in the resource table, in the order shown, once the list has settled. */
  async rowNames() {
    await this.listSettled();
    return this.byTestIdPrefix('resource-link-').evaluateAll((nodes) => nodes.map((node) => node.textContent.trim()));
  }

  /** Waits until the list shows rows or its empty or error state, and is not loading. */
  async listSettled(timeout = TIMEOUT_MS) {
    await this.page.waitForFunction(
      () =>
        document.querySelector('[data-testid="resource-table"], [data-testid="state-empty"], [data-testid="state-error"]') !==
          null && document.querySelector('[data-testid="resource-list"] [aria-busy="true"]') === null,
      null,
      { timeout },
    );
  }

  /** The header texts of the resource table. */
  async headers() {
    return this.byTestId('resource-table')
      .locator('thead th')
      .evaluateAll((cells) => cells.map((cell) => cell.textContent.trim()).filter((text) => text !== ''));
  }

  /** The pods a workload page shows, in the order shown, once its pod list has loaded. */
  async workloadPods() {
    await this.page.waitForFunction(
      () =>
        document.querySelector('[data-testid="workload-pods"] [data-testid="workload-pod-table"], [data-testid="workload-pods"] [data-testid="state-empty"]') !==
          null && document.querySelector('[data-testid="workload-pods"] [aria-busy="true"]') === null,
      null,
      { timeout: TIMEOUT_MS },
    );
    return this.page
      .locator('[data-testid="workload-pod-table"] [data-testid^="workload-pod-"]')
      .evaluateAll((nodes) => nodes.map((node) => node.textContent.trim()));
  }

  /** The workload's action permissions once they are known: `{scale, restart, delete}`. */
  async workloadPermissions() {
    const element = this.byTestId('workload-permissions');
    await this.page.waitForFunction(
      () => document.querySelector('[data-testid="workload-permissions"]')?.dataset.state === 'known',
      null,
      { timeout: TIMEOUT_MS },
    );
    const flag = async (name) => (await element.getAttribute(`data-${name}`)) === 'true';
    return { scale: await flag('scale'), restart: await flag('restart'), delete: await flag('delete') };
  }

  async yaml() {
    return this.text('resource-yaml');
  }
}
