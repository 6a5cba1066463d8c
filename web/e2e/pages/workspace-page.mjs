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

  /** Waits until a permission-guarded button (`data-state` = `checking` / `known`) knows, and says whether it is allowed. */
  async allowed(id) {
    await this.page.waitForFunction(
      (wanted) => document.querySelector(`[data-testid="${wanted}"]`)?.dataset.state === 'known',
      id,
      { timeout: TIMEOUT_MS },
    );
    return (await this.byTestId(id).getAttribute('data-allowed')) === 'true';
  }

  /** The YAML editor's content element (CodeMirror's `contenteditable`). */
  editorContent() {
    return this.page.locator('[data-testid="yaml-editor"] .cm-content');
  }

  /** Waits until the editor shows a line matching `pattern` (a RegExp on the whole line). */
  async editorLine(pattern) {
    const line = this.page.locator('[data-testid="yaml-editor"] .cm-line', { hasText: pattern }).first();
    await line.waitFor({ state: 'visible', timeout: TIMEOUT_MS });
    return line;
  }

  /**
   * Edits a line as a user would: clicks at its end, deletes `remove` characters, types `insert`.
   */
  async editLineEnd(pattern, remove, insert) {
    const line = await this.editorLine(pattern);
    await line.click();
    await this.page.keyboard.press('End');
    for (let index = 0; index < remove; index += 1) await this.page.keyboard.press('Backspace');
    await this.page.keyboard.type(insert);
  }

  /** Replaces the editor's whole text as a paste of `text` would (select all, paste). */
  async pasteIntoEditor(text) {
    const content = this.editorContent();
    await content.click();
    await this.page.keyboard.press('Control+A');
    await content.evaluate((node, pasted) => {
      const data = new DataTransfer();
      data.setData('text/plain', pasted);
      node.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
    }, text);
  }

  /** The lines of the dry-run diff as `+text` / `-text` (unchanged lines left out). */
  async diffChanges() {
    await this.visible('yaml-diff');
    return this.byTestId('yaml-diff-line').evaluateAll((nodes) =>
      nodes
        .filter((node) => node.dataset.kind === 'added' || node.dataset.kind === 'removed')
        .map((node) => `${node.dataset.kind === 'added' ? '+' : '-'}${node.querySelector('.text').textContent}`),
    );
  }

  /** The per-document results of a create: `[{state, kind, name, message}]`. */
  async createResults() {
    await this.visible('yaml-create-results');
    return this.byTestIdPrefix('yaml-create-result-').evaluateAll((rows) =>
      rows.map((row) => ({
        state: row.dataset.state,
        kind: row.dataset.kind,
        name: row.dataset.name,
        message: row.querySelector('[data-testid="yaml-create-message"]')?.textContent.trim() ?? '',
      })),
    );
  }

  /** The revisions of a Deployment as its page shows them, newest first: `[{revision, current, name}]`. */
  async revisions() {
    await this.visible('workload-revisions');
    return this.page.locator('[data-testid^="workload-revision-"][data-current]').evaluateAll((nodes) =>
      nodes.map((node) => ({
        revision: Number(node.textContent.trim()),
        current: node.dataset.current === 'true',
        name: node.dataset.name,
      })),
    );
  }
}
