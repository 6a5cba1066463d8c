import { BasePage } from './base-page.mjs';

export class AuditPage extends BasePage {
  /** Filters by the given fields (test id suffix -> value), searches, and answers the rows' text. */
  async search(filters) {
    await this.click('audit-reset');
    for (const [field, value] of Object.entries(filters)) {
      await this.fill(`audit-filter-${field}`, value);
    }
    const answered = this.page.waitForResponse(
      (response) => new URL(response.url()).pathname === '/kuboard-api/audit' && response.request().method() === 'GET',
    );
    await this.click('audit-search');
    /** The query the server was asked (the filters are applied there, not to the page shown). */
    this.lastQuery = new URL((await answered).url()).searchParams;
    await this.page.waitForLoadState('networkidle');
    return this.rows();
  }

  async rows() {
    const rows = this.page.locator('tr', { has: this.page.locator('[data-testid="audit-row"]') });
    return rows.evaluateAll((nodes) => nodes.map((node) => node.innerText.replace(/\s+/g, ' ').trim()));
  }
}
