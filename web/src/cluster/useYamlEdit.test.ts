import { describe, expect, it } from 'vitest';
import { ApiError } from '@/api/errors';
import type { KubeClient, SendOptions } from './kubeClient';
import type { KubeObject } from './overview';
import { useYamlEdit } from './useYamlEdit';

const PATH = '/apis/apps/v1/namespaces/shop/deployments/web';

function deployment(
  resourceVersion: string,
  replicas: number,
  labels: Record<string, string> = {},
): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'web',
      namespace: 'shop',
      resourceVersion,
      labels,
      managedFields: [{ manager: 'kubectl' }],
    },
    spec: { replicas },
  };
}

interface Sent {
  method: string;
  path: string;
  options: SendOptions;
}

/**
 * A fake apiserver of one object with the real one's rules for a PUT: a stale resourceVersion is a
 * 409 Conflict, a dry run answers the would-be object and stores nothing.
 */
function fakeApiserver(initial: KubeObject) {
  let stored = initial;
  const sent: Sent[] = [];
  const kube: KubeClient = {
    get: <T>() => Promise.resolve(JSON.parse(JSON.stringify(stored)) as T),
    open: () => Promise.reject(new Error('not used')),
    send: <T>(_cluster: string, method: string, path: string, options: SendOptions = {}) => {
      sent.push({ method, path, options: JSON.parse(JSON.stringify(options)) as SendOptions });
      const body = options.body as KubeObject;
      if (body.metadata?.resourceVersion !== stored.metadata?.resourceVersion) {
        return Promise.reject(
          new ApiError({
            kind: 'http',
            status: 409,
            code: 'Conflict',
            message: 'Operation cannot be fulfilled on deployments.apps "web": the object has been modified',
          }),
        );
      }
      const next = String(Number(stored.metadata?.resourceVersion) + 1);
      const result = { ...body, metadata: { ...body.metadata, resourceVersion: next } };
      if (options.query?.dryRun === 'All') {
        return Promise.resolve({
          ...result,
          metadata: { ...result.metadata, resourceVersion: stored.metadata?.resourceVersion },
        } as T);
      }
      stored = result;
      return Promise.resolve(result as T);
    },
  };
  return {
    kube,
    sent,
    stored: () => stored,
    changeElsewhere: (object: KubeObject) => {
      stored = object;
    },
  };
}

describe('editing an object as YAML', () => {
  it('previews a dry run with its diff, then applies the same object with the version started from', async () => {
    const server = fakeApiserver(deployment('10', 1));
    const edit = useYamlEdit(server.kube, () => ({ cluster: 'c', path: PATH }));
    await edit.open();
    expect(edit.text.value).not.toContain('managedFields');
    expect(edit.text.value).toMatch(/^ {2}replicas: 1$/m);

    edit.text.value = edit.text.value.replace('  replicas: 1', '  replicas: 3');
    await edit.runPreview();
    expect(server.sent).toHaveLength(1);
    expect(server.sent[0]?.options.query).toEqual({ dryRun: 'All' });
    expect(server.stored().spec?.replicas).toBe(1);
    const changes = edit.preview.value?.diff.lines.filter(
      (line) => line.kind !== 'same' && line.kind !== 'skipped',
    );
    expect(changes?.map((line) => `${line.kind} ${line.text}`)).toEqual([
      'removed   replicas: 1',
      'added   replicas: 3',
    ]);
    expect(edit.previewChanges.value).toBe(true);

    await edit.apply();
    expect(server.sent).toHaveLength(2);
    expect(server.sent[1]?.options.query).toBeUndefined();
    expect((server.sent[1]?.options.body as KubeObject).metadata?.resourceVersion).toBe('10');
    expect(server.stored().spec?.replicas).toBe(3);
    expect(edit.appliedVersion.value).toBe('11');
    // The editor now starts from the stored object, so a second edit carries its version.
    expect(edit.original.value?.metadata?.resourceVersion).toBe('11');
    expect(edit.dirty.value).toBe(false);
  });

  it('does not apply a text changed after its preview', async () => {
    const server = fakeApiserver(deployment('10', 1));
    const edit = useYamlEdit(server.kube, () => ({ cluster: 'c', path: PATH }));
    await edit.open();
    edit.text.value = edit.text.value.replace('  replicas: 1', '  replicas: 3');
    await edit.runPreview();
    edit.text.value = edit.text.value.replace('  replicas: 3', '  replicas: 4');
    expect(edit.previewCurrent.value).toBe(false);
    await edit.apply();
    expect(server.sent).toHaveLength(1);
    expect(server.stored().spec?.replicas).toBe(1);
  });

  it('sends nothing for a YAML error, several documents, or another name, and says why', async () => {
    const server = fakeApiserver(deployment('10', 1));
    const edit = useYamlEdit(server.kube, () => ({ cluster: 'c', path: PATH }));
    await edit.open();
    const start = edit.text.value;
    edit.text.value = `${start}spec: [\n`;
    await edit.runPreview();
    expect(edit.problem.value?.key).toBe('parseError');
    expect(edit.problem.value?.params.line).toBeGreaterThan(1);
    edit.text.value = `${start}---\nkind: Other\n`;
    await edit.runPreview();
    expect(edit.problem.value).toEqual({ key: 'oneDocument', params: { count: 2 } });
    edit.text.value = start.replace('  name: web', '  name: api');
    await edit.runPreview();
    expect(edit.problem.value).toEqual({ key: 'identityChanged', params: { field: 'metadata.name' } });
    expect(server.sent).toEqual([]);
  });

  it('explains a 409 instead of overwriting, and reloads the current object keeping the text', async () => {
    const server = fakeApiserver(deployment('10', 1));
    const edit = useYamlEdit(server.kube, () => ({ cluster: 'c', path: PATH }));
    await edit.open();
    edit.text.value = edit.text.value.replace('  replicas: 1', '  replicas: 3');
    await edit.runPreview();
    server.changeElsewhere(deployment('12', 1, { changed: 'elsewhere' }));
    const mine = edit.text.value;

    await edit.apply();
    expect(edit.conflict.value).toBe(true);
    expect(edit.failure.value).toBeNull();
    expect(server.stored().metadata?.labels).toEqual({ changed: 'elsewhere' });
    expect(server.stored().spec?.replicas).toBe(1);

    await edit.reloadAfterConflict();
    expect(edit.conflict.value).toBe(false);
    expect(edit.yourText.value).toBe(mine);
    expect(edit.original.value?.metadata?.resourceVersion).toBe('12');
    expect(edit.text.value).toMatch(/changed: elsewhere/);
    edit.text.value = edit.text.value.replace('  replicas: 1', '  replicas: 3');
    await edit.runPreview();
    await edit.apply();
    expect(server.stored().spec?.replicas).toBe(3);
    expect(server.stored().metadata?.labels).toEqual({ changed: 'elsewhere' });
  });

  it("keeps a Secret's values hidden, sends the stored ones back, and reveals only an unchanged text", async () => {
    const secret: KubeObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'db', namespace: 'shop', resourceVersion: '5' },
      data: { password: 'c2VjcmV0' },
    };
    const server = fakeApiserver(secret);
    const edit = useYamlEdit(server.kube, () => ({
      cluster: 'c',
      path: '/api/v1/namespaces/shop/secrets/db',
    }));
    await edit.open();
    expect(edit.isSecret.value).toBe(true);
    expect(edit.text.value).not.toContain('c2VjcmV0');
    edit.toggleReveal();
    expect(edit.text.value).toContain('c2VjcmV0');
    edit.toggleReveal();
    edit.text.value = edit.text.value.replace('metadata:\n', 'metadata:\n  labels:\n    tier: db\n');
    edit.toggleReveal();
    expect(edit.revealed.value).toBe(false);
    expect(edit.text.value).not.toContain('c2VjcmV0');

    await edit.runPreview();
    expect(JSON.stringify(edit.preview.value?.diff)).not.toContain('c2VjcmV0');
    await edit.apply();
    expect(server.stored().data).toEqual({ password: 'c2VjcmV0' });
    expect(server.stored().metadata?.labels).toEqual({ tier: 'db' });
  });
});
