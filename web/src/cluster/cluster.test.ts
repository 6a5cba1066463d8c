import { beforeEach, describe, expect, it, vi } from 'vitest';
import { createPinia, setActivePinia } from 'pinia';
import { reactive } from 'vue';
import { isApiError } from '@/api/errors';
import { createConsoleRouter } from '@/router';
import {
  groupFromParam,
  groupParam,
  kindsOf,
  loadDiscovery,
  preferredGroupVersions,
  splitGroupVersion,
} from './discovery';
import { createKubeClient, kubeUrl, setKube, TABLE_ACCEPT } from './kubeClient';
import { listAll, nodeSummary, podPhases, recentWarnings, workloadsBehind } from './overview';
import { ageSeconds, compareCells, filterByName, mapTable } from './table';
import { listPath, usePagedList } from './usePagedList';
import { useWorkspaceStore } from './workspaceStore';
import { HIDDEN, hideSecretValues, toYaml } from './yaml';

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

type Route = (url: URL, request: Request) => Response | Promise<Response>;

/** A Kubernetes client over a fake `fetch` answering from `routes` ("/path" below the cluster). */
function fakeKube(routes: Record<string, Route>) {
  const requests: { path: string; search: URLSearchParams; accept: string | null }[] = [];
  const fetch = vi.fn(async (request: Request) => {
    const url = new URL(request.url);
    const prefix = '/k8s-api/dev';
    expect(url.pathname.startsWith(prefix)).toBe(true);
    const path = url.pathname.slice(prefix.length);
    requests.push({ path, search: url.searchParams, accept: request.headers.get('accept') });
    const route = routes[path];
    if (route === undefined) {
      return json(404, {
        kind: 'Status',
        status: 'Failure',
        reason: 'NotFound',
        code: 404,
        message: `${path} not found`,
      });
    }
    return route(url, request);
  });
  const client = createKubeClient({
    baseUrl: 'http://console.test',
    fetch,
    sleep: async () => undefined,
    readRetryDelaysMs: [],
  });
  return { client, requests, fetch };
}

const coreV1 = {
  kind: 'APIResourceList',
  groupVersion: 'v1',
  resources: [
    {
      name: 'pods',
      singularName: 'pod',
      namespaced: true,
      kind: 'Pod',
      verbs: ['get', 'list', 'watch'],
      shortNames: ['po'],
    },
    { name: 'pods/log', namespaced: true, kind: 'Pod', verbs: ['get'] },
    { name: 'nodes', namespaced: false, kind: 'Node', verbs: ['get', 'list'] },
    { name: 'bindings', namespaced: true, kind: 'Binding', verbs: ['create'] },
  ],
};
const groups = {
  kind: 'APIGroupList',
  groups: [
    {
      name: 'apps',
      versions: [{ groupVersion: 'apps/v1', version: 'v1' }],
      preferredVersion: { groupVersion: 'apps/v1', version: 'v1' },
    },
    { name: 'example.com', versions: [{ groupVersion: 'example.com/v1beta1', version: 'v1beta1' }] },
    {
      name: 'metrics.k8s.io',
      preferredVersion: { groupVersion: 'metrics.k8s.io/v1beta1', version: 'v1beta1' },
    },
  ],
};
const appsV1 = {
  groupVersion: 'apps/v1',
  resources: [
    { name: 'deployments', namespaced: true, kind: 'Deployment', verbs: ['list', 'get'] },
    { name: 'deployments/scale', namespaced: true, kind: 'Scale', verbs: ['get', 'update'] },
  ],
};
const widgets = {
  groupVersion: 'example.com/v1beta1',
  resources: [{ name: 'widgets', namespaced: false, kind: 'Widget', verbs: ['list'] }],
};

describe('discovery', () => {
  it('keeps listable kinds and drops subresources and kinds without list', () => {
    expect(kindsOf(coreV1)).toEqual([
      {
        group: '',
        version: 'v1',
        resource: 'pods',
        kind: 'Pod',
        namespaced: true,
        verbs: ['get', 'list', 'watch'],
        shortNames: ['po'],
      },
      {
        group: '',
        version: 'v1',
        resource: 'nodes',
        kind: 'Node',
        namespaced: false,
        verbs: ['get', 'list'],
        shortNames: [],
      },
    ]);
    expect(kindsOf({ resources: coreV1.resources })).toEqual([]);
  });

  it('splits group versions and reads the preferred version of each group', () => {
    expect(splitGroupVersion('v1')).toEqual({ group: '', version: 'v1' });
    expect(splitGroupVersion('apps/v1')).toEqual({ group: 'apps', version: 'v1' });
    expect(preferredGroupVersions(groups)).toEqual([
      'apps/v1',
      'example.com/v1beta1',
      'metrics.k8s.io/v1beta1',
    ]);
    expect(groupFromParam(groupParam(''))).toBe('');
    expect(groupFromParam(groupParam('apps'))).toBe('apps');
  });

  it('loads every group, custom ones included, and reports a group that fails without failing', async () => {
    const { client } = fakeKube({
      '/api/v1': () => json(200, coreV1),
      '/apis': () => json(200, groups),
      '/apis/apps/v1': () => json(200, appsV1),
      '/apis/example.com/v1beta1': () => json(200, widgets),
      '/apis/metrics.k8s.io/v1beta1': () =>
        json(503, {
          kind: 'Status',
          reason: 'ServiceUnavailable',
          message: 'the server is currently unable to handle the request',
        }),
    });
    const discovery = await loadDiscovery(client, 'dev');
    expect(discovery.kinds.map((kind) => `${kind.group}/${kind.resource}`)).toEqual([
      '/nodes',
      '/pods',
      'apps/deployments',
      'example.com/widgets',
    ]);
    expect(discovery.failedGroupVersions).toEqual(['metrics.k8s.io/v1beta1']);
  });

  it('fails when the core group cannot be read', async () => {
    const { client } = fakeKube({
      '/api/v1': () =>
        json(403, {
          kind: 'Status',
          reason: 'Forbidden',
          message: 'forbidden: User "dev" cannot get path "/api/v1"',
        }),
      '/apis': () => json(200, groups),
    });
    const failure = await loadDiscovery(client, 'dev').catch((error: unknown) => error);
    expect(isApiError(failure)).toBe(true);
    expect(failure).toMatchObject({
      status: 403,
      code: 'Forbidden',
      message: 'forbidden: User "dev" cannot get path "/api/v1"',
    });
  });
});

describe('the Kubernetes client', () => {
  it('builds proxy URLs without empty parameters', () => {
    expect(
      kubeUrl('http://c.test', 'my cluster', '/api/v1/pods', {
        limit: 5,
        continue: '',
        labelSelector: 'app=web',
      }),
    ).toBe('http://c.test/k8s-api/my%20cluster/api/v1/pods?limit=5&labelSelector=app%3Dweb');
  });

  it("maps Kuboard's own error body and a load balancer's page", async () => {
    const { client } = fakeKube({
      '/api/v1/a': () =>
        json(404, { code: 'cluster_not_found', message: 'no cluster dev', request_id: 'r-1' }),
      '/api/v1/b': () => new Response('<html>bad gateway</html>', { status: 502 }),
    });
    await expect(client.get('dev', '/api/v1/a')).rejects.toMatchObject({
      code: 'cluster_not_found',
      requestId: 'r-1',
    });
    await expect(client.get('dev', '/api/v1/b')).rejects.toMatchObject({ kind: 'unreachable', status: 502 });
  });

  it('retries a read that no replica answered', async () => {
    let calls = 0;
    const fetch = vi.fn(async () => {
      calls += 1;
      return calls === 1 ? new Response('', { status: 502 }) : json(200, { items: [] });
    });
    const client = createKubeClient({
      baseUrl: 'http://c.test',
      fetch,
      sleep: async () => undefined,
      readRetryDelaysMs: [1],
    });
    await expect(client.get('dev', '/api/v1/pods')).resolves.toEqual({ items: [] });
    expect(calls).toBe(2);
  });
});

const podTable = (names: string[], continueToken = '', resourceVersion = '10') => ({
  kind: 'Table',
  apiVersion: 'meta.k8s.io/v1',
  metadata: { resourceVersion, continue: continueToken },
  columnDefinitions: [
    { name: 'Name', type: 'string', format: 'name', priority: 0, description: 'Name must be unique' },
    { name: 'Status', type: 'string', format: '', priority: 0, description: '' },
    { name: 'Restarts', type: 'integer', format: '', priority: 0, description: '' },
    { name: 'Age', type: 'string', format: '', priority: 0, description: '' },
    { name: 'Node', type: 'string', format: '', priority: 1, description: '' },
  ],
  rows: names.map((name, index) => ({
    cells: [name, 'Running', index, `${index}m`, 'node-1'],
    object: {
      kind: 'PartialObjectMetadata',
      metadata: {
        name,
        namespace: 'team-a',
        uid: `uid-${name}`,
        labels: { app: 'web' },
        creationTimestamp: '2026-12-01T00:00:00Z',
      },
    },
  })),
});

describe('table mapping', () => {
  it('keeps the printer columns of priority 0 and maps each row with its metadata', () => {
    const table = mapTable(podTable(['web-1', 'web-2'], 'next', '42'));
    expect(table.columns.map((column) => column.name)).toEqual(['Name', 'Status', 'Restarts', 'Age']);
    expect(table.resourceVersion).toBe('42');
    expect(table.continueToken).toBe('next');
    expect(table.rows[1]).toEqual({
      key: 'team-a/web-2',
      name: 'web-2',
      namespace: 'team-a',
      uid: 'uid-web-2',
      createdAt: '2026-12-01T00:00:00Z',
      labels: { app: 'web' },
      cells: { Name: 'web-2', Status: 'Running', Restarts: 1, Age: '1m' },
    });
    expect(mapTable(podTable(['a']), { wide: true }).columns.map((column) => column.name)).toContain('Node');
  });

  it('falls back to names and creation times for a plain list', () => {
    const table = mapTable({
      kind: 'WidgetList',
      metadata: { resourceVersion: '7' },
      items: [{ metadata: { name: 'w1', creationTimestamp: '2026-12-01T00:00:00Z' } }],
    });
    expect(table.columns.map((column) => column.name)).toEqual(['Name', 'Created']);
    expect(table.rows).toMatchObject([{ key: 'w1', name: 'w1', namespace: '', cells: { Name: 'w1' } }]);
    expect(mapTable(null).rows).toEqual([]);
  });

  it('sorts numbers, ages and names the way a reader expects', () => {
    const integer = { type: 'integer' };
    const text = { type: 'string' };
    expect([10, 9, 100].sort((a, b) => compareCells(a, b, integer))).toEqual([9, 10, 100]);
    expect(['2h', '45s', '3d', '5m'].sort((a, b) => compareCells(a, b, text))).toEqual([
      '45s',
      '5m',
      '2h',
      '3d',
    ]);
    expect(['pod-10', 'pod-2', '', 'pod-1'].sort((a, b) => compareCells(a, b, text))).toEqual([
      'pod-1',
      'pod-2',
      'pod-10',
      '',
    ]);
    expect(ageSeconds('1d2h')).toBe(93600);
    expect(ageSeconds('Running')).toBeNull();
  });

  it('filters rows by a part of the name, ignoring case', () => {
    const { rows } = mapTable(podTable(['web-1', 'db-1', 'Web-admin']));
    expect(filterByName(rows, ' WEB').map((row) => row.name)).toEqual(['web-1', 'Web-admin']);
    expect(filterByName(rows, '')).toHaveLength(3);
  });
});

describe('paged lists', () => {
  const pods = { group: '', version: 'v1', resource: 'pods', namespaced: true };

  it('builds list paths per namespace or for all', () => {
    expect(listPath(pods, 'team-a')).toBe('/api/v1/namespaces/team-a/pods');
    expect(listPath(pods, '')).toBe('/api/v1/pods');
    expect(listPath({ group: 'apps', version: 'v1', resource: 'deployments', namespaced: true }, '')).toBe(
      '/apis/apps/v1/deployments',
    );
    expect(listPath({ group: '', version: 'v1', resource: 'nodes', namespaced: false }, 'team-a')).toBe(
      '/api/v1/nodes',
    );
  });

  it('asks for a Table page by page with limit and continue, and appends each page', async () => {
    const { client, requests } = fakeKube({
      '/api/v1/namespaces/team-a/pods': (url) =>
        url.searchParams.get('continue') === 'page-2'
          ? json(200, podTable(['web-3']))
          : json(200, podTable(['web-1', 'web-2'], 'page-2')),
    });
    const list = usePagedList(
      client,
      () => ({ cluster: 'dev', path: '/api/v1/namespaces/team-a/pods', labelSelector: 'app=web' }),
      { pageSize: 2 },
    );
    await list.loadFirst();
    expect(list.rows.value.map((row) => row.name)).toEqual(['web-1', 'web-2']);
    expect(list.continueToken.value).toBe('page-2');
    await list.loadMore();
    expect(list.rows.value.map((row) => row.name)).toEqual(['web-1', 'web-2', 'web-3']);
    expect(list.continueToken.value).toBe('');
    await list.loadMore();
    expect(requests).toHaveLength(2);
    expect(requests[0]?.accept).toBe(TABLE_ACCEPT);
    expect(requests[0]?.search.get('limit')).toBe('2');
    expect(requests[0]?.search.get('labelSelector')).toBe('app=web');
    expect(requests[0]?.search.has('continue')).toBe(false);
    expect(requests[1]?.search.get('continue')).toBe('page-2');
  });

  it('starts over from the first page when the continuation expired (410)', async () => {
    let first = 0;
    const { client } = fakeKube({
      '/api/v1/pods': (url) => {
        if (url.searchParams.get('continue') === 'old') {
          return json(410, {
            kind: 'Status',
            reason: 'Expired',
            code: 410,
            message: 'The provided continue parameter is too old',
          });
        }
        first += 1;
        return json(200, first === 1 ? podTable(['a', 'b'], 'old') : podTable(['a', 'c'], 'fresh'));
      },
    });
    const list = usePagedList(client, () => ({ cluster: 'dev', path: '/api/v1/pods', labelSelector: '' }), {
      pageSize: 2,
    });
    await list.loadFirst();
    await list.loadMore();
    expect(list.restarted.value).toBe(1);
    expect(list.error.value).toBeNull();
    expect(list.rows.value.map((row) => row.name)).toEqual(['a', 'c']);
    expect(list.continueToken.value).toBe('fresh');
  });

  it('keeps the error of a failed list and clears the rows', async () => {
    const { client } = fakeKube({
      '/api/v1/pods': () =>
        json(400, {
          kind: 'Status',
          reason: 'BadRequest',
          message: 'unable to parse requirement: found "!!"',
        }),
    });
    const list = usePagedList(client, () => ({ cluster: 'dev', path: '/api/v1/pods', labelSelector: 'a!!' }));
    await list.loadFirst();
    expect(list.rows.value).toEqual([]);
    expect(list.error.value).toMatchObject({ status: 400, code: 'BadRequest' });
    expect(list.loading.value).toBe(false);
  });

  it('drops the answer of a list that was replaced meanwhile', async () => {
    let release: (() => void) | null = null;
    const { client } = fakeKube({
      '/api/v1/pods': () =>
        new Promise<Response>((resolve) => {
          release = () => resolve(json(200, podTable(['stale'])));
        }),
      '/api/v1/namespaces/b/pods': () => json(200, podTable(['fresh'])),
    });
    let path = '/api/v1/pods';
    const list = usePagedList(client, () => ({ cluster: 'dev', path, labelSelector: '' }));
    const slow = list.loadFirst();
    await vi.waitFor(() => expect(release).not.toBeNull());
    path = '/api/v1/namespaces/b/pods';
    await list.loadFirst();
    (release as unknown as () => void)();
    await slow;
    expect(list.rows.value.map((row) => row.name)).toEqual(['fresh']);
  });
});

describe('overview', () => {
  it('summarises a node: ready, roles, version, capacity and allocatable', () => {
    const node = nodeSummary({
      metadata: {
        name: 'n1',
        labels: {
          'node-role.kubernetes.io/control-plane': '',
          'node-role.kubernetes.io/worker': '',
          zone: 'a',
        },
      },
      status: {
        conditions: [
          { type: 'MemoryPressure', status: 'False' },
          { type: 'Ready', status: 'True' },
        ],
        nodeInfo: { kubeletVersion: 'v1.32.4' },
        capacity: { cpu: '4', memory: '16Gi', pods: '110' },
        allocatable: { cpu: '3800m', memory: '15Gi', pods: '110' },
      },
    });
    expect(node).toEqual({
      name: 'n1',
      ready: true,
      roles: ['control-plane', 'worker'],
      version: 'v1.32.4',
      capacity: { cpu: '4', memory: '16Gi', pods: '110' },
      allocatable: { cpu: '3800m', memory: '15Gi', pods: '110' },
    });
    expect(
      nodeSummary({
        metadata: { name: 'n2' },
        status: { conditions: [{ type: 'Ready', status: 'Unknown' }] },
      }).ready,
    ).toBe(false);
  });

  it('counts pods by phase, a pod without one as Pending', () => {
    expect(
      podPhases([
        { status: { phase: 'Running' } },
        { status: { phase: 'Failed' } },
        { status: {} },
        { status: { phase: 'Running' } },
      ]),
    ).toEqual({
      Running: 2,
      Failed: 1,
      Pending: 1,
    });
  });

  it('finds workloads below their desired count', () => {
    expect(
      workloadsBehind('Deployment', [
        { metadata: { name: 'ok', namespace: 'a' }, spec: { replicas: 2 }, status: { readyReplicas: 2 } },
        { metadata: { name: 'short', namespace: 'a' }, spec: { replicas: 3 }, status: { readyReplicas: 1 } },
        { metadata: { name: 'default-one', namespace: 'a' }, spec: {}, status: {} },
        { metadata: { name: 'scaled-to-zero', namespace: 'a' }, spec: { replicas: 0 }, status: {} },
      ]),
    ).toEqual([
      { kind: 'Deployment', namespace: 'a', name: 'short', desired: 3, ready: 1 },
      { kind: 'Deployment', namespace: 'a', name: 'default-one', desired: 1, ready: 0 },
    ]);
    expect(
      workloadsBehind('DaemonSet', [
        {
          metadata: { name: 'ds', namespace: 'kube-system' },
          status: { desiredNumberScheduled: 5, numberReady: 4 },
        },
      ]),
    ).toEqual([{ kind: 'DaemonSet', namespace: 'kube-system', name: 'ds', desired: 5, ready: 4 }]);
  });

  it('keeps the most recent Warning events, newest first', () => {
    const event = (name: string, type: string, lastTimestamp: string) => ({
      metadata: { name, namespace: 'a' },
      type,
      reason: 'BackOff',
      message: `${name} failed`,
      involvedObject: { kind: 'Pod', name: `pod-${name}` },
      lastTimestamp,
      count: 3,
    });
    const warnings = recentWarnings(
      [
        event('old', 'Warning', '2026-12-01T00:00:00Z'),
        event('normal', 'Normal', '2026-12-05T00:00:00Z'),
        event('new', 'Warning', '2026-12-04T00:00:00Z'),
        event('mid', 'Warning', '2026-12-02T00:00:00Z'),
      ],
      2,
    );
    expect(warnings.map((warning) => warning.key)).toEqual(['a/new', 'a/mid']);
    expect(warnings[0]).toMatchObject({
      object: 'pod/pod-new',
      reason: 'BackOff',
      count: 3,
      lastSeen: '2026-12-04T00:00:00Z',
    });
  });

  it('reads a whole list page by page and stops at the page limit', async () => {
    const { client, requests } = fakeKube({
      '/api/v1/pods': (url) => {
        const page = Number(url.searchParams.get('continue') || '0');
        return json(200, {
          metadata: { continue: page < 4 ? String(page + 1) : '' },
          items: [{ metadata: { name: `p${page}` } }],
        });
      },
    });
    const all = await listAll(client, 'dev', '/api/v1/pods');
    expect(all.complete).toBe(true);
    expect(all.items.map((item) => item.metadata?.name)).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
    const capped = await listAll(client, 'dev', '/api/v1/pods', {}, 2);
    expect(capped).toMatchObject({
      complete: false,
      items: [{ metadata: { name: 'p0' } }, { metadata: { name: 'p1' } }],
    });
    expect(requests).toHaveLength(7);
  });
});

describe('the workspace store', () => {
  beforeEach(() => {
    setActivePinia(createPinia());
  });

  it('reads the kinds and the namespaces of the cluster it opens, once', async () => {
    const { client, requests } = fakeKube({
      '/api/v1': () => json(200, coreV1),
      '/apis': () => json(200, { groups: [] }),
      '/api/v1/namespaces': () =>
        json(200, {
          metadata: {},
          items: [{ metadata: { name: 'team-b' } }, { metadata: { name: 'default' } }],
        }),
    });
    setKube(client);
    const store = useWorkspaceStore();
    await store.open('dev');
    expect(store.discovery?.kinds.map((kind) => kind.resource)).toEqual(['nodes', 'pods']);
    expect(store.namespaces).toEqual(['default', 'team-b']);
    expect(store.kind('', 'v1', 'pods')?.kind).toBe('Pod');
    const count = requests.length;
    await store.open('dev');
    expect(requests).toHaveLength(count);
    setKube(null);
  });

  it('keeps the error when discovery fails, and the namespaces when only they fail', async () => {
    const { client } = fakeKube({
      '/api/v1': () => json(200, coreV1),
      '/apis': () => json(200, { groups: [] }),
      '/api/v1/namespaces': () =>
        json(403, { kind: 'Status', reason: 'Forbidden', message: 'cannot list namespaces' }),
    });
    setKube(client);
    const store = useWorkspaceStore();
    await store.open('dev');
    expect(store.discoveryError).toBeNull();
    expect(store.namespacesError).toMatchObject({ code: 'Forbidden' });
    expect(store.namespaces).toEqual([]);
    setKube(null);
  });
});

describe('YAML for reading', () => {
  it('writes nested maps and lists, quoting strings YAML would misread', () => {
    expect(
      toYaml({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: 'web',
          labels: { 'app.kubernetes.io/name': 'web', version: '1.0' },
          annotations: {},
        },
        spec: {
          containers: [{ name: 'web', args: ['--port', '8080', 'a: b'], env: [] }],
          hostNetwork: false,
        },
        status: { phase: 'Running', message: 'line one\nline two', ready: 'true', empty: '' },
      }),
    ).toBe(
      [
        'apiVersion: v1',
        'kind: Pod',
        'metadata:',
        '  name: web',
        '  labels:',
        '    app.kubernetes.io/name: web',
        '    version: "1.0"',
        '  annotations: {}',
        'spec:',
        '  containers:',
        '  - name: web',
        '    args:',
        '    - "--port"',
        '    - "8080"',
        '    - "a: b"',
        '    env: []',
        '  hostNetwork: false',
        'status:',
        '  phase: Running',
        '  message: "line one\\nline two"',
        '  ready: "true"',
        '  empty: ""',
        '',
      ].join('\n'),
    );
    expect(toYaml([[1, 2], { a: null }])).toBe('- - 1\n  - 2\n- a: null\n');
  });

  it("hides a Secret's values, the last-applied copy included, and leaves other kinds alone", () => {
    const secret = {
      kind: 'Secret',
      metadata: {
        name: 's',
        annotations: {
          'kubectl.kubernetes.io/last-applied-configuration': '{"data":{"password":"aHVudGVyMg=="}}',
          team: 'a',
        },
      },
      data: { password: 'aHVudGVyMg==' },
      stringData: { token: 'plain' },
    };
    const hidden = hideSecretValues(secret);
    const text = toYaml(hidden);
    expect(text).not.toContain('aHVudGVyMg');
    expect(text).not.toContain('plain');
    expect(hidden.data.password).toBe(HIDDEN);
    expect(hidden.metadata.annotations.team).toBe('a');
    expect(secret.data.password).toBe('aHVudGVyMg==');
    // What a page holds is a reactive proxy of the object.
    const fromPage = hideSecretValues(reactive(structuredClone(secret)));
    expect(fromPage.data.password).toBe(HIDDEN);
    expect(toYaml(fromPage)).not.toContain('aHVudGVyMg');
    const configMap = { kind: 'ConfigMap', data: { a: 'b' } };
    expect(hideSecretValues(configMap)).toBe(configMap);
  });
});

describe('workspace routes', () => {
  it('keep /clusters/:name for the connection page and put the workspace below it', () => {
    const router = createConsoleRouter();
    expect(router.resolve('/clusters/dev').name).toBe('cluster');
    expect(router.resolve('/clusters/dev/overview').name).toBe('cluster-overview');
    const list = router.resolve('/clusters/dev/resources/core/v1/pods');
    expect(list.name).toBe('cluster-resources');
    expect(list.params).toMatchObject({ name: 'dev', group: 'core', version: 'v1', resource: 'pods' });
    const detail = router.resolve('/clusters/dev/resources/apps/v1/deployments/team-a/web');
    expect(detail.name).toBe('cluster-resource');
    expect(detail.params).toMatchObject({ group: 'apps', namespace: 'team-a', object: 'web' });
  });
});
