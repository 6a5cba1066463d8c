import { BasePage } from './base-page.mjs';

export class SystemPage extends BasePage {
  async servedBy() {
    return Number(await this.text('ha-served-by'));
  }

  /**
   * One reading of the page (it refreshes every 3 s, possibly from another replica):
   * `{ servedBy, term, members }`, each member `{ id, role, health, term, commit_index,
   * applied_index, revision, matched_index }`; `health` is the tag's `data-health`, each position
   * the cell's text (`—` when the answering replica cannot know it).
   */
  async snapshot() {
    await this.visible('ha-served-by');
    return this.page.evaluate(() => {
      const text = (id) => document.querySelector(`[data-testid="${id}"]`)?.innerText.trim() ?? '';
      const members = [...document.querySelectorAll('[data-testid^="ha-member-row-"]')].map((node) => {
        const id = node.dataset.testid.replace('ha-member-row-', '');
        const member = {
          id: Number(id),
          role: node.dataset.role,
          health: document.querySelector(`[data-testid="ha-member-health-${id}"]`)?.dataset.health ?? '',
        };
        for (const name of ['term', 'commit_index', 'applied_index', 'revision', 'matched_index']) {
          member[name] = text(`ha-member-${name}-${id}`);
        }
        return member;
      });
      return { servedBy: Number(text('ha-served-by')), term: text('ha-term'), members };
    });
  }

  async members() {
    return (await this.snapshot()).members;
  }
}
