// Screenshots of every page of the console in Chinese and English, written to docs/ui/ as
// <page>.<language>.png. Runs against the same three replicas behind nginx as the suite, with a
// cluster, a user and a role binding made first so that no page is empty; inside the cluster, a
// namespace with a Deployment (the fake apiserver's controllers make its pods) and a warning.
//
// SCREENSHOTS=workspace takes only the pages inside the cluster.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { REPO_ROOT, startEnvironment } from './harness/ha-setup.mjs';
import { waitFor } from './harness/processes.mjs';
import { launchBrowser, newContext } from './lib/browser.mjs';
import { settle } from './lib/page-checks.mjs';
import { LoginPage } from './pages/login-page.mjs';
import { PasswordPage } from './pages/password-page.mjs';
import { Shell } from './pages/shell.mjs';

const OUT = join(REPO_ROOT, 'docs', 'ui');
const PASSWORD = 'Kb-screens-Passw0rd-7';
const CLUSTER = 'production';
const NAMESPACE = 'team-a';
const ONLY = process.env.SCREENSHOTS ?? '';

/** The API as the logged-in page: its cookies, and the CSRF header for changes. */
async function apiPost(page, context, url, data) {
  const csrf = (await context.cookies()).find((cookie) => cookie.name === 'kuboard_csrf')?.value;
  const response = await page.request.post(url, { headers: { 'x-kuboard-csrf': csrf ?? '' }, data });
  if (response.status() >= 300) throw new Error(`POST ${url}: ${response.status()} ${await response.text()}`);
  return response.json();
}

/** The objects inside the cluster the workspace pages show. */
async function makeWorkspaceObjects(page, context, url) {
  const kube = (path, object) => apiPost(page, context, `${url}/k8s-api/${CLUSTER}${path}`, object);
  await kube('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
  await kube('/api/v1/nodes', {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'node-a', labels: { 'node-role.kubernetes.io/control-plane': '' } },
    status: {
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }],
      nodeInfo: { kubeletVersion: 'v1.32.4' },
      capacity: { cpu: '8', memory: '32Gi', pods: '110' },
      allocatable: { cpu: '7800m', memory: '31Gi', pods: '110' },
    },
  });
  await kube(`/apis/apps/v1/namespaces/${NAMESPACE}/deployments`, {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web' },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          containers: [
            {
              name: 'nginx',
              image: 'nginx:1.27',
              ports: [{ containerPort: 80, name: 'http' }],
              resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '128Mi' } },
            },
          ],
        },
      },
    },
  });
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  await kube(`/api/v1/namespaces/${NAMESPACE}/events`, {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: 'web.scaled' },
    involvedObject: { kind: 'Deployment', name: 'web', namespace: NAMESPACE, apiVersion: 'apps/v1' },
    type: 'Normal',
    reason: 'ScalingReplicaSet',
    message: 'Scaled up replica set to 3',
    count: 1,
    lastTimestamp: now,
  });
  await kube(`/api/v1/namespaces/${NAMESPACE}/events`, {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: 'cache.backoff' },
    involvedObject: { kind: 'Pod', name: 'cache-0', namespace: NAMESPACE },
    type: 'Warning',
    reason: 'BackOff',
    message: 'Back-off restarting failed container redis',
    count: 7,
    lastTimestamp: now,
  });
  const csrf = (await context.cookies()).find((cookie) => cookie.name === 'kuboard_csrf')?.value;
  const pods = await (
    await page.request.get(`${url}/k8s-api/${CLUSTER}/api/v1/namespaces/${NAMESPACE}/pods`, {
      headers: { 'x-kuboard-csrf': csrf ?? '' },
    })
  ).json();
  return pods.items.map((pod) => pod.metadata.name).sort();
}

async function main() {
  mkdirSync(OUT, { recursive: true });
  const environment = await startEnvironment({ fakeArguments: ['--workload-controllers'] });
  const browser = await launchBrowser();
  try {
    const context = await newContext(browser, { locale: 'zh-CN' });
    const page = await context.newPage();
    const url = environment.url;
    const login = new LoginPage(page, url);
    const shell = new Shell(page, url);
    /** `ready`: a condition the page meets once drawn (live pages keep a stream open: never idle). */
    const shot = async (name, language, ready) => {
      if (ready) {
        await page.waitForFunction(ready, undefined, { timeout: 20000 });
        await settle(page);
      } else {
        await page.waitForLoadState('networkidle');
      }
      const path = join(OUT, `${name}.${language}.png`);
      await page.screenshot({ path });
      console.log(`wrote ${path}`);
    };

    for (const language of ONLY === 'workspace' ? [] : ['zh-CN', 'en']) {
      await login.open();
      await shell.click(`lang-${language}`);
      await shot('login', language);
    }
    if (ONLY === 'workspace') await login.open();
    await login.logIn('admin', 'Kuboard123');
    await waitFor('the password page', () => login.path() === '/password');
    if (ONLY !== 'workspace') {
      await shot('password-required', 'en');
      await shell.click('lang-zh-CN');
      await shot('password-required', 'zh-CN');
    }
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
    const pods = await makeWorkspaceObjects(page, context, url);
    for (const language of ONLY === 'workspace' ? [] : ['zh-CN', 'en']) {
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

    const workspaceViews = [
      ['workspace-overview', `/clusters/${CLUSTER}/overview?namespace=${NAMESPACE}`, () =>
        document.querySelector('[data-testid="overview-pod-total"]') !== null &&
        document.querySelector('[aria-busy="true"]') === null],
      ['workspace-pods', `/clusters/${CLUSTER}/resources/core/v1/pods?namespace=${NAMESPACE}`, () =>
          document.querySelector('[data-testid="resource-live"]')?.dataset.state === 'live' &&
          document.querySelector('[aria-busy="true"]') === null],
      ['workspace-deployment', `/clusters/${CLUSTER}/resources/apps/v1/deployments/${NAMESPACE}/web?namespace=${NAMESPACE}`, () =>
        document.querySelector('[data-testid="workload-pods-live"]')?.dataset.state === 'live' &&
        document.querySelector('[data-testid="workload-permissions"]')?.dataset.state === 'known' &&
        document.querySelector('[aria-busy="true"]') === null],
      ['workspace-logs', `/clusters/${CLUSTER}/pods/${NAMESPACE}/${pods[0]}/logs?namespace=${NAMESPACE}`, () =>
        document.querySelector('[data-testid="logs-state"]')?.dataset.state === 'live' &&
        document.querySelectorAll('[data-testid="logs-line"]').length >= 10],
      ['workspace-terminal', `/clusters/${CLUSTER}/pods/${NAMESPACE}/${pods[0]}/terminal?namespace=${NAMESPACE}`, () =>
        document.querySelector('[data-testid="terminal-state"]')?.dataset.state === 'open' &&
        (document.querySelector('[data-testid="terminal-screen"] .xterm-rows')?.textContent ?? '').includes('#')],
    ];
    for (const language of ['zh-CN', 'en']) {
      await shell.goto('/clusters');
      await shell.click(`lang-${language}`);
      for (const [name, path, ready] of workspaceViews) {
        await shell.goto(path);
        if (name === 'workspace-terminal') {
          // A command and its output on the screen.
          await page.waitForFunction(ready, undefined, { timeout: 20000 });
          await page.locator('[data-testid="terminal-screen"] .xterm-helper-textarea').focus();
          await page.keyboard.type('hostname; whoami; ls\r');
        }
        await shot(name, language, ready);
      }
    }
  } finally {
    await browser.close();
    await environment.stop();
  }
}

await main();
