import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { objectApiPath, type ApiResourceList, type ResourceKind } from './discovery';
import type { KubeObject } from './overview';
import { HIDDEN, hideSecretValues, toYaml } from './yaml';
import {
  createTarget,
  DocumentError,
  editableObject,
  identityChange,
  lineDiff,
  objectToSend,
  parseDocuments,
  templateFor,
} from './yamlEdit';

const deployment: KubeObject = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {
    name: 'web',
    namespace: 'shop',
    resourceVersion: '41',
    managedFields: [{ manager: 'kubectl', operation: 'Update' }],
  },
  spec: { replicas: 2 },
};

const kinds: ResourceKind[] = [
  {
    group: '',
    version: 'v1',
    resource: 'configmaps',
    kind: 'ConfigMap',
    namespaced: true,
    verbs: ['create', 'list'],
    shortNames: [],
  },
  {
    group: '',
    version: 'v1',
    resource: 'namespaces',
    kind: 'Namespace',
    namespaced: false,
    verbs: ['create', 'list'],
    shortNames: [],
  },
  {
    group: 'apps',
    version: 'v1',
    resource: 'deployments',
    kind: 'Deployment',
    namespaced: true,
    verbs: ['create', 'list'],
    shortNames: [],
  },
];

const noGroupVersion = (): Promise<ApiResourceList> => Promise.reject(new Error('not served'));

describe('the editable object', () => {
  it('leaves managedFields out and keeps everything else, without touching the original', () => {
    const editable = editableObject(deployment);
    expect(editable.metadata).toEqual({ name: 'web', namespace: 'shop', resourceVersion: '41' });
    expect(editable.spec).toEqual({ replicas: 2 });
    expect(deployment.metadata?.managedFields).toHaveLength(1);
  });

  it('reads back to the same object through the editor text (tricky scalars included)', () => {
    const object = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'tricky', labels: { 'app.kubernetes.io/name': 'x' } },
      data: {
        a: '.5',
        b: '.inf',
        c: 'yes',
        d: '0x1F',
        e: 'two\nlines',
        f: ' padded ',
        g: 'a: b',
        h: '',
        i: '1.0',
      },
    };
    const parsed = parseDocuments(toYaml(object));
    expect(parsed.problem).toBeNull();
    expect(parsed.documents).toEqual([object]);
  });
});

describe('parsing the user text', () => {
  it('reads several documents and skips empty ones', () => {
    const parsed = parseDocuments(
      '---\napiVersion: v1\nkind: ConfigMap\n---\n---\napiVersion: v1\nkind: Service\n',
    );
    expect(parsed.problem).toBeNull();
    expect(parsed.documents?.map((document) => document.kind)).toEqual(['ConfigMap', 'Service']);
  });

  it('names the line of a syntax error and returns no document', () => {
    const parsed = parseDocuments('apiVersion: v1\nkind: ConfigMap\n---\nmetadata:\n  name: [a\n');
    expect(parsed.documents).toBeNull();
    expect(parsed.problem?.line).toBeGreaterThanOrEqual(5);
    expect(parsed.problem?.message).not.toBe('');
  });

  it('refuses a document that is not a mapping, with its line', () => {
    const parsed = parseDocuments('kind: ConfigMap\n---\n- a\n- b\n');
    expect(parsed.documents).toBeNull();
    expect(parsed.problem?.line).toBe(3);
  });

  it('refuses a duplicate key', () => {
    const parsed = parseDocuments('kind: ConfigMap\nkind: Secret\n');
    expect(parsed.documents).toBeNull();
    expect(parsed.problem?.line).toBe(2);
  });
});

describe('the object sent', () => {
  it('carries the resourceVersion the user started from, whatever the text says', () => {
    const edited = {
      ...editableObject(deployment),
      metadata: { name: 'web', namespace: 'shop', resourceVersion: '99' },
    };
    expect((objectToSend(edited, deployment).metadata as { resourceVersion: string }).resourceVersion).toBe(
      '41',
    );
    const withoutVersion = { ...editableObject(deployment), metadata: { name: 'web', namespace: 'shop' } };
    expect(
      (objectToSend(withoutVersion, deployment).metadata as { resourceVersion: string }).resourceVersion,
    ).toBe('41');
  });

  it("puts a hidden Secret's values back, and keeps values the user typed", () => {
    const secret: KubeObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'db',
        resourceVersion: '7',
        annotations: {
          'kubectl.kubernetes.io/last-applied-configuration': '{"data":{"password":"c2VjcmV0"}}',
        },
      },
      data: { password: 'c2VjcmV0', user: 'YWRtaW4=' },
    };
    const shown = parse(toYaml(hideSecretValues(editableObject(secret)))) as Record<string, unknown>;
    expect(JSON.stringify(shown)).not.toContain('c2VjcmV0');
    (shown.data as Record<string, string>).user = 'cm9vdA==';
    (shown.data as Record<string, string>).added = 'bmV3';
    const sent = objectToSend(shown, secret);
    expect(sent.data).toEqual({ password: 'c2VjcmV0', user: 'cm9vdA==', added: 'bmV3' });
    expect((sent.metadata as { annotations: Record<string, string> }).annotations).toEqual(
      secret.metadata?.annotations,
    );
    expect(JSON.stringify(sent)).not.toContain(HIDDEN);
  });

  it('names a change of kind, apiVersion, name or namespace', () => {
    const same = editableObject(deployment) as Record<string, unknown>;
    expect(identityChange(same, deployment)).toBeNull();
    expect(identityChange({ ...same, kind: 'StatefulSet' }, deployment)).toBe('kind');
    expect(identityChange({ ...same, apiVersion: 'apps/v1beta1' }, deployment)).toBe('apiVersion');
    expect(identityChange({ ...same, metadata: { name: 'api', namespace: 'shop' } }, deployment)).toBe(
      'metadata.name',
    );
    expect(identityChange({ ...same, metadata: { name: 'web', namespace: 'other' } }, deployment)).toBe(
      'metadata.namespace',
    );
    expect(identityChange({ ...same, metadata: { name: 'web' } }, deployment)).toBeNull();
  });
});

describe('the line diff', () => {
  it('marks removed and added lines and counts them', () => {
    const diff = lineDiff('a\nreplicas: 2\nc\n', 'a\nreplicas: 3\nc\nd\n');
    expect(diff.lines.map((line) => `${line.kind}:${line.text}`)).toEqual([
      'same:a',
      'removed:replicas: 2',
      'added:replicas: 3',
      'same:c',
      'added:d',
    ]);
    expect([diff.added, diff.removed]).toEqual([2, 1]);
  });

  it('folds long unchanged runs around the changes, keeping three lines of context', () => {
    const before = Array.from({ length: 20 }, (_, index) => `line ${index}`);
    const after = [...before];
    after[10] = 'line ten';
    const diff = lineDiff(`${before.join('\n')}\n`, `${after.join('\n')}\n`);
    expect(diff.lines.map((line) => (line.kind === 'skipped' ? `skip ${line.count}` : line.text))).toEqual([
      'skip 7',
      'line 7',
      'line 8',
      'line 9',
      'line 10',
      'line ten',
      'line 11',
      'line 12',
      'line 13',
      'skip 6',
    ]);
  });

  it('is empty of changes for equal texts', () => {
    const diff = lineDiff('a\nb\n', 'a\nb\n');
    expect([diff.added, diff.removed]).toEqual([0, 0]);
  });
});

describe('where a created document goes', () => {
  it('a namespaced kind: the document namespace, else the picked one, else default', async () => {
    const document = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 'team' } };
    expect(await createTarget(document, kinds, 'picked', noGroupVersion)).toMatchObject({
      path: '/api/v1/namespaces/team/configmaps',
      namespace: 'team',
      name: 'a',
    });
    const bare = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'b' } };
    expect((await createTarget(bare, kinds, 'picked', noGroupVersion)).path).toBe(
      '/api/v1/namespaces/picked/configmaps',
    );
    expect((await createTarget(bare, kinds, '', noGroupVersion)).path).toBe(
      '/api/v1/namespaces/default/configmaps',
    );
  });

  it('a cluster-wide kind and a group kind', async () => {
    const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n', namespace: 'ignored' } };
    expect(await createTarget(namespace, kinds, 'picked', noGroupVersion)).toMatchObject({
      path: '/api/v1/namespaces',
      namespace: '',
    });
    const app = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' } };
    expect((await createTarget(app, kinds, 'shop', noGroupVersion)).path).toBe(
      '/apis/apps/v1/namespaces/shop/deployments',
    );
  });

  it('a version discovery did not prefer is looked up in its own resource list', async () => {
    const read = (groupVersion: string): Promise<ApiResourceList> =>
      Promise.resolve({
        groupVersion,
        resources: [
          {
            name: 'horizontalpodautoscalers',
            kind: 'HorizontalPodAutoscaler',
            namespaced: true,
            verbs: ['list'],
          },
        ],
      });
    const hpa = { apiVersion: 'autoscaling/v1', kind: 'HorizontalPodAutoscaler', metadata: { name: 'h' } };
    expect((await createTarget(hpa, kinds, 'shop', read)).path).toBe(
      '/apis/autoscaling/v1/namespaces/shop/horizontalpodautoscalers',
    );
  });

  it('refuses a document without apiVersion or kind, or of a kind the cluster does not serve', async () => {
    await expect(createTarget({ kind: 'ConfigMap' }, kinds, '', noGroupVersion)).rejects.toThrow(
      DocumentError,
    );
    await expect(
      createTarget({ apiVersion: 'example.com/v1', kind: 'Widget' }, kinds, '', noGroupVersion),
    ).rejects.toThrow('the cluster does not serve Widget in example.com/v1');
  });
});

describe('the API path of an object from the route', () => {
  it('core and group kinds, namespaced and cluster-wide, names escaped', () => {
    expect(
      objectApiPath({ group: 'core', version: 'v1', resource: 'pods', namespace: 'a', object: 'web-1' }),
    ).toBe('/api/v1/namespaces/a/pods/web-1');
    expect(
      objectApiPath({
        group: 'rbac.authorization.k8s.io',
        version: 'v1',
        resource: 'clusterroles',
        namespace: '-',
        object: 'system:view',
      }),
    ).toBe('/apis/rbac.authorization.k8s.io/v1/clusterroles/system%3Aview');
  });
});

describe('templates', () => {
  it('parse to an object of the kind, in the picked namespace', () => {
    for (const kind of kinds) {
      const parsed = parseDocuments(templateFor(kind, 'shop'));
      expect(parsed.problem).toBeNull();
      const [document] = parsed.documents ?? [];
      expect(document?.kind).toBe(kind.kind);
      expect((document?.metadata as { namespace?: string }).namespace).toBe(
        kind.namespaced ? 'shop' : undefined,
      );
    }
  });
});
