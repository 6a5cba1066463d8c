import { BasePage } from './base-page.mjs';

export class AuditPage extends BasePage {
  /** Filters by the given fields (test id suffix -> value), searches, and answers the rows' text. */
  async search(filters) {
    await this.click('audit-reset');
    for (const [field, value] of Object.entries(filters)) {
      await this.fill(`audit-filter-${field}`, value);
    }
    await this.click('audit-search');
    await this.page.waitForLoadState('networkidle');
    return this.rows();
  }

  async rows() {
    const rows = this.page.locator('tr', { has: this.page.locator('[data-testid="audit-row"]') });
    return rows.evaluateAll((nodes) => nodes.map((node) => node.innerText.replace(/\s+/g, ' ').trim()));
  }
}
