// Screenshots of every page of the console in Chinese and English, written to docs/ui/ as
// <page>.<language>.png. Runs against the same three replicas behind nginx as the suite, with a
// cluster, a user and a role binding made first so that no page is empty.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { REPO_ROOT, startEnvironment } from './harness/ha-setup.mjs';
import { waitFor } from './harness/processes.mjs';
import { launchBrowser, newContext } from './lib/browser.mjs';
import { LoginPage } from './pages/login-page.mjs';
import { PasswordPage } from './pages/password-page.mjs';
import { Shell } from './pages/shell.mjs';

const OUT = join(REPO_ROOT, 'docs', 'ui');
const PASSWORD = 'Kb-screens-Passw0rd-7';
const CLUSTER = 'production';

/** The API as the logged-in page: its cookies, and the CSRF header for changes. */
async function apiPost(page, context, url, data) {
  const csrf = (await context.cookies()).find((cookie) => cookie.name === 'kuboard_csrf')?.value;
  const response = await page.request.post(url, { headers: { 'x-kuboard-csrf': csrf ?? '' }, data });
  if (response.status() >= 300) throw new Error(`POST ${url}: ${response.status()} ${await response.text()}`);
}

async function main() {
  mkdirSync(OUT, { recursive: true });
  const environment = await startEnvironment();
  const browser = await launchBrowser();
  try {
    const context = await newContext(browser, { locale: 'zh-CN' });
    const page = await context.newPage();
    const url = environment.url;
    const login = new LoginPage(page, url);
    const shell = new Shell(page, url);
    const shot = async (name, language) => {
      await page.waitForLoadState('networkidle');
      const path = join(OUT, `${name}.${language}.png`);
      await page.screenshot({ path });
      console.log(`wrote ${path}`);
    };

    for (const language of ['zh-CN', 'en']) {
      await login.open();
      await shell.click(`lang-${language}`);
      await shot('login', language);
    }
    await login.logIn('admin', 'Kuboard123');
    await waitFor('the password page', () => login.path() === '/password');
    await shot('password-required', 'en');
    await shell.click('lang-zh-CN');
    await shot('password-required', 'zh-CN');
    await new PasswordPage(page, url).change('Kuboard123', PASSWORD);
    await waitFor('leaving the password page', () => login.path() !== '/password');

    await apiPost(page, context, `${url}/kuboard-api/clusters`, {
      name: CLUSTER,
      description: 'three apiservers behind the balancer',
      endpoints: environment.fake.urls,
      credentials: { token: environment.fake.token, ca_certificate: environment.fake.ca },
    });
    await apiPost(page, context, `${url}/kuboard-api/users`, {
      username: 'alice',
      password: 'Kb-user-Passw0rd-3',
      role: 'viewer',
      groups: ['developers'],
    });
    await apiPost(page, context, `${url}/kuboard-api/role-bindings`, {
      subject: { kind: 'user', name: 'alice' },
      cluster: CLUSTER,
      namespace: 'team-a',
      role: 'edit',
    });

    const views = [
      ['clusters', '/clusters'],
      ['cluster', `/clusters/${CLUSTER}`],
      ['users', '/users'],
      ['audit', '/audit'],
      ['system', '/system'],
      ['access-keys', '/access-keys'],
      ['password', '/password'],
    ];
    for (const language of ['zh-CN', 'en']) {
      await shell.goto('/clusters');
      await shell.click(`lang-${language}`);
      for (const [name, path] of views) {
        await shell.goto(path);
        await shell.visible('app-header');
        if (name === 'clusters') {
          await page.waitForFunction(
            () =>
              document.querySelectorAll(
                '[data-testid^="cluster-endpoint-production-"][data-state="preferred"]',
              ).length === 1,
            undefined,
            { timeout: 20000 },
          );
        }
        await shot(name, language);
        if (name === 'clusters') {
          await shell.click('cluster-import');
          await shell.visible('cluster-import-dialog');
          await shell.click('import-mode-token');
          await shot('cluster-import', language);
          await page.keyboard.press('Escape');
        }
        if (name === 'users') {
          for (const tab of ['bindings', 'identity']) {
            await shell.click(`users-tab-${tab}`);
            await shot(`users-${tab}`, language);
          }
        }
      }
    }
  } finally {
    await browser.close();
    await environment.stop();
  }
}

await main();
