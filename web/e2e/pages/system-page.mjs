import { BasePage } from './base-page.mjs';

export class SystemPage extends BasePage {
  async servedBy() {
    return Number(await this.text('ha-served-by'));
  }

  /** `[{ id, role, health }]` of every member row. */
  async members() {
    const rows = this.byTestIdPrefix('ha-member-row-');
    return rows.evaluateAll((nodes) =>
      nodes.map((node) => {
        const id = node.dataset.testid.replace('ha-member-row-', '');
        const health = document.querySelector(`[data-testid="ha-member-health-${id}"]`);
        return { id: Number(id), role: node.dataset.role, health: health?.innerText.trim() ?? '' };
      }),
    );
  }
}
