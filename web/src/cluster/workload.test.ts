import { afterEach, describe, expect, it, vi } from 'vitest';
import { isApiError } from '@/api/errors';
import { rememberCsrfToken } from '@/api/csrf';
import { createKubeClient } from './kubeClient';
import type { KubeObject } from './overview';
import {
  canI,
  canUpdateObject,
  containersOf,
  desiredReplicas,
  isWorkload,
  restartPatch,
  RESTARTED_AT,
  REVISION,
  revisionsOf,
  rollbackPatch,
  scalePatch,
  selectorText,
  validReplicas,
  workloadPermissions,
} from './workload';

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

interface Seen {
  method: string;
  path: string;
  search: string;
  contentType: string | null;
  csrf: string | null;
  body: unknown;
}

/** A client over a fake `fetch` that records each request and answers with `answer`. */
function recordingKube(answer: (seen: Seen) => Response) {
  const seen: Seen[] = [];
  const fetch = vi.fn(async (request: Request) => {
    const url = new URL(request.url);
    const text = await request.text();
    const entry: Seen = {
      method: request.method,
      path: url.pathname,
      search: url.search,
      contentType: request.headers.get('content-type'),
      csrf: request.headers.get('x-kuboard-csrf'),
      body: text === '' ? undefined : JSON.parse(text),
    };
    seen.push(entry);
    return answer(entry);
  });
  const client = createKubeClient({
    baseUrl: 'http://console.test',
    fetch,
    sleep: async () => undefined,
    readRetryDelaysMs: [10, 10],
  });
  return { client, seen, fetch };
}

afterEach(() => rememberCsrfToken(null));

describe('workload helpers', () => {
  it('knows which kinds get the workload page', () => {
    expect(isWorkload('apps', 'deployments')).toBe(true);
    expect(isWorkload('apps', 'statefulsets')).toBe(true);
    expect(isWorkload('apps', 'replicasets')).toBe(false);
    expect(isWorkload('', 'deployments')).toBe(false);
  });

  it('writes a label selector as the labelSelector query', () => {
    expect(selectorText({ matchLabels: { app: 'web', tier: 'front' } })).toBe('app=web,tier=front');
    expect(
      selectorText({
        matchLabels: { app: 'web' },
        matchExpressions: [
          { key: 'track', operator: 'In', values: ['stable', 'canary'] },
          { key: 'env', operator: 'NotIn', values: ['dev'] },
          { key: 'owner', operator: 'Exists' },
          { key: 'legacy', operator: 'DoesNotExist' },
        ],
      }),
    ).toBe('app=web,track in (stable,canary),env notin (dev),owner,!legacy');
    expect(selectorText(undefined)).toBe('');
    expect(selectorText({})).toBe('');
  });

  it('restarts as kubectl rollout restart does and scales through the scale subresource', () => {
    expect(restartPatch(new Date('2026-12-07T03:04:05.678Z'))).toEqual({
      spec: { template: { metadata: { annotations: { [RESTARTED_AT]: '2026-12-07T03:04:05Z' } } } },
    });
    expect(scalePatch(3)).toEqual({ spec: { replicas: 3 } });
  });

  it('takes only whole replica counts from 0', () => {
    expect(validReplicas(0)).toBe(true);
    expect(validReplicas(12)).toBe(true);
    expect(validReplicas(-1)).toBe(false);
    expect(validReplicas(1.5)).toBe(false);
    expect(validReplicas(undefined)).toBe(false);
    expect(validReplicas(Number.NaN)).toBe(false);
    expect(validReplicas('3')).toBe(false);
  });

  it('lists the init and app containers of the pod template', () => {
    const deployment = {
      kind: 'Deployment',
      spec: {
        replicas: 0,
        template: {
          spec: {
            initContainers: [{ name: 'migrate', image: 'tool:1' }],
            containers: [
              {
                name: 'web',
                image: 'nginx:1.25',
                ports: [
                  { containerPort: 80, name: 'http' },
                  { containerPort: 9090, protocol: 'UDP' },
                ],
                resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '128Mi' } },
              },
            ],
          },
        },
      },
    };
    expect(containersOf(deployment)).toEqual([
      { name: 'migrate', image: 'tool:1', init: true, ports: '', requests: '', limits: '' },
      {
        name: 'web',
        image: 'nginx:1.25',
        init: false,
        ports: '80/TCP (http), 9090/UDP',
        requests: 'cpu 100m · memory 64Mi',
        limits: 'memory 128Mi',
      },
    ]);
    expect(desiredReplicas(deployment)).toBe(0);
    expect(desiredReplicas({ spec: {} })).toBe(1);
    expect(containersOf({})).toEqual([]);
  });
});

describe('changes through the proxy', () => {
  it('sends a patch with its content type, the CSRF header and the JSON body', async () => {
    rememberCsrfToken('csrf-1');
    const { client, seen } = recordingKube(() => json(200, { kind: 'Scale', spec: { replicas: 4 } }));
    const answer = await client.send<{ spec: { replicas: number } }>(
      'dev',
      'PATCH',
      '/apis/apps/v1/namespaces/a/deployments/web/scale',
      { body: scalePatch(4), contentType: 'application/merge-patch+json' },
    );
    expect(answer.spec.replicas).toBe(4);
    expect(seen).toEqual([
      {
        method: 'PATCH',
        path: '/k8s-api/dev/apis/apps/v1/namespaces/a/deployments/web/scale',
        search: '',
        contentType: 'application/merge-patch+json',
        csrf: 'csrf-1',
        body: { spec: { replicas: 4 } },
      },
    ]);
  });

  it("maps the apiserver's 403 to an error with its reason and message, and never retries a change", async () => {
    const forbidden = {
      kind: 'Status',
      status: 'Failure',
      reason: 'Forbidden',
      code: 403,
      message: 'deployments.apps "web" is forbidden: User "kuboard:viewer" cannot delete',
    };
    const refused = recordingKube(() => json(403, forbidden));
    const error: unknown = await refused.client
      .send('dev', 'DELETE', '/apis/apps/v1/namespaces/a/deployments/web')
      .catch((failure: unknown) => failure);
    expect(isApiError(error) && [error.status, error.code, error.message]).toEqual([
      403,
      'Forbidden',
      forbidden.message,
    ]);

    const gone = recordingKube(() => json(503, { code: 'unreachable', message: 'no upstream' }));
    await expect(gone.client.send('dev', 'DELETE', '/api/v1/namespaces/a/pods/p')).rejects.toSatisfy(
      isApiError,
    );
    expect(gone.fetch).toHaveBeenCalledTimes(1);
  });
});

describe('permissions', () => {
  it('asks a SelfSubjectAccessReview and believes only a clear yes', async () => {
    const answers: unknown[] = [
      { status: { allowed: true } },
      { status: { allowed: false } },
      { status: {} },
    ];
    const { client, seen } = recordingKube(() => json(201, answers.shift()));
    const attributes = {
      verb: 'delete',
      group: 'apps',
      resource: 'deployments',
      namespace: 'a',
      name: 'web',
    };
    expect(await canI(client, 'dev', attributes)).toBe(true);
    expect(await canI(client, 'dev', attributes)).toBe(false);
    expect(await canI(client, 'dev', attributes)).toBe(false);
    expect(seen[0]).toMatchObject({
      method: 'POST',
      path: '/k8s-api/dev/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
      contentType: 'application/json',
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SelfSubjectAccessReview',
        spec: { resourceAttributes: attributes },
      },
    });
  });

  it('counts a review that failed as not allowed', async () => {
    const { client } = recordingKube(() =>
      json(500, { kind: 'Status', message: 'boom', reason: 'InternalError' }),
    );
    expect(await canI(client, 'dev', { verb: 'patch', group: 'apps', resource: 'deployments' })).toBe(false);
  });

  it("asks for the workload page's three actions", async () => {
    const { client, seen } = recordingKube((request) => {
      const attributes = (
        request.body as { spec: { resourceAttributes: { verb: string; subresource?: string } } }
      ).spec.resourceAttributes;
      // A user who may scale but not patch the workload itself nor delete it.
      return json(201, { status: { allowed: attributes.subresource === 'scale' } });
    });
    const allowed = await workloadPermissions(client, 'dev', {
      group: 'apps',
      resource: 'deployments',
      namespace: 'a',
      name: 'web',
    });
    expect(allowed).toEqual({ scale: true, restart: false, delete: false });
    const asked = seen.map(
      (request) =>
        (request.body as { spec: { resourceAttributes: Record<string, string> } }).spec.resourceAttributes,
    );
    expect(asked).toEqual(
      expect.arrayContaining([
        {
          group: 'apps',
          resource: 'deployments',
          namespace: 'a',
          name: 'web',
          verb: 'patch',
          subresource: 'scale',
        },
        { group: 'apps', resource: 'deployments', namespace: 'a', name: 'web', verb: 'patch' },
        { group: 'apps', resource: 'deployments', namespace: 'a', name: 'web', verb: 'delete' },
      ]),
    );
    expect(asked).toHaveLength(3);
  });

  it("asks whether an object may be replaced, from the route's parameters", async () => {
    const { client, seen } = recordingKube(() => json(201, { status: { allowed: true } }));
    const attributes = () =>
      (seen.at(-1)?.body as { spec: { resourceAttributes: Record<string, string | undefined> } }).spec
        .resourceAttributes;
    expect(
      await canUpdateObject(client, 'dev', {
        group: 'core',
        resource: 'configmaps',
        namespace: 'a',
        object: 'x',
      }),
    ).toBe(true);
    expect(attributes()).toEqual({
      verb: 'update',
      group: '',
      resource: 'configmaps',
      namespace: 'a',
      name: 'x',
    });
    await canUpdateObject(client, 'dev', {
      group: 'rbac.authorization.k8s.io',
      resource: 'clusterroles',
      namespace: '-',
      object: 'view',
    });
    expect(attributes()).toMatchObject({ verb: 'update', group: 'rbac.authorization.k8s.io', name: 'view' });
    expect(attributes()?.namespace).toBeUndefined();
  });
});

describe('revision history and rollback', () => {
  const deployment: KubeObject = { kind: 'Deployment', metadata: { name: 'web', uid: 'd-1' } };
  function replicaSet(name: string, revision: string | undefined, image: string, owner = 'd-1'): KubeObject {
    return {
      kind: 'ReplicaSet',
      metadata: {
        name,
        uid: `rs-${name}`,
        creationTimestamp: '2026-12-07T10:00:00Z',
        annotations: revision === undefined ? {} : { [REVISION]: revision },
        ownerReferences: [{ kind: 'Deployment', name: 'web', uid: owner, controller: true }],
      },
      spec: {
        replicas: revision === '3' ? 2 : 0,
        template: {
          metadata: { labels: { app: 'web', 'pod-template-hash': `hash-${name}` } },
          spec: { containers: [{ name: 'main', image }] },
        },
      },
    };
  }

  it("lists the Deployment's own ReplicaSets, newest revision first and marked current", () => {
    const revisions = revisionsOf(deployment, [
      replicaSet('web-a', '1', 'nginx:1'),
      replicaSet('web-c', '3', 'nginx:3'),
      replicaSet('web-b', '2', 'nginx:2'),
      replicaSet('other', '4', 'nginx:4', 'd-2'),
      replicaSet('web-unnumbered', undefined, 'nginx:5'),
    ]);
    expect(
      revisions.map((revision) => [revision.revision, revision.name, revision.images, revision.current]),
    ).toEqual([
      [3, 'web-c', 'nginx:3', true],
      [2, 'web-b', 'nginx:2', false],
      [1, 'web-a', 'nginx:1', false],
    ]);
    expect(revisions[0]?.replicas).toBe(2);
    expect(
      revisionsOf({ kind: 'Deployment', metadata: { name: 'web' } }, [replicaSet('web-a', '1', 'x')]),
    ).toEqual([]);
  });

  it("a rollback replaces the template with the ReplicaSet's, without its pod-template-hash", () => {
    const old = replicaSet('web-a', '1', 'nginx:1');
    expect(rollbackPatch(old)).toEqual([
      {
        op: 'replace',
        path: '/spec/template',
        value: {
          metadata: { labels: { app: 'web' } },
          spec: { containers: [{ name: 'main', image: 'nginx:1' }] },
        },
      },
    ]);
    // The ReplicaSet itself is left as it was.
    expect(
      (old.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels,
    ).toHaveProperty('pod-template-hash');
  });
});
