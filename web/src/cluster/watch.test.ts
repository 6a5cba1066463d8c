// @vitest-environment node
import { describe, expect, it, vi } from 'vitest';
import { createKubeClient } from './kubeClient';
import type { TableColumn } from './table';
import { usePagedList } from './usePagedList';
import { applyEvent, watchEvents } from './watch';

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

const COLUMNS = [
  { name: 'Name', type: 'string', format: 'name', priority: 0, description: '' },
  { name: 'Status', type: 'string', format: '', priority: 0, description: '' },
  { name: 'Node', type: 'string', format: '', priority: 1, description: '' },
];

/** A one-row Table as a watch event carries it (no column definitions, as the apiserver may send). */
const row = (name: string, status: string, resourceVersion: string) => ({
  kind: 'Table',
  apiVersion: 'meta.k8s.io/v1',
  rows: [
    {
      cells: [name, status, 'node-1'],
      object: {
        kind: 'PartialObjectMetadata',
        metadata: { name, namespace: 'team-a', uid: `uid-${name}`, resourceVersion },
      },
    },
  ],
});

const list = (names: string[], resourceVersion: string) => ({
  kind: 'Table',
  metadata: { resourceVersion },
  columnDefinitions: COLUMNS,
  rows: names.map((name) => row(name, 'Running', resourceVersion).rows[0]),
});

/** A watch response whose events the test pushes. */
function stream() {
  const encoder = new TextEncoder();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(own) {
      controller = own;
    },
  });
  return {
    response: new Response(body, { status: 200, headers: { 'content-type': 'application/json' } }),
    push: (event: unknown) => controller.enqueue(encoder.encode(`${JSON.stringify(event)}\n`)),
    close: () => controller.close(),
  };
}

describe('watch streams', () => {
  it('split into events across chunk boundaries, and fail on a line that is no event', async () => {
    const encoder = new TextEncoder();
    const chunks = [
      '{"type":"ADDED","object":{"a":1}}\n{"type":"DEL',
      'ETED","object":{}}\n',
      '{"type":"BOOKMARK","object":{}}',
    ];
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
        controller.close();
      },
    });
    const types: string[] = [];
    for await (const event of watchEvents(body)) types.push(event.type);
    expect(types).toEqual(['ADDED', 'DELETED', 'BOOKMARK']);

    const broken = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode('<html>\n'));
        controller.close();
      },
    });
    await expect(
      (async () => {
        for await (const event of watchEvents(broken)) types.push(event.type);
      })(),
    ).rejects.toThrow();
  });

  it('add, replace and remove rows by namespace and name', () => {
    const columns = COLUMNS as TableColumn[];
    let rows = applyEvent([], { type: 'ADDED', object: row('a', 'Pending', '5') }, columns, true).rows;
    rows = applyEvent(rows, { type: 'ADDED', object: row('b', 'Pending', '6') }, columns, true).rows;
    const modified = applyEvent(rows, { type: 'MODIFIED', object: row('a', 'Running', '7') }, columns, true);
    expect(modified.resourceVersion).toBe('7');
    expect(modified.rows.map((r) => `${r.name}:${String(r.cells.Status)}`)).toEqual([
      'a:Running',
      'b:Pending',
    ]);
    const deleted = applyEvent(
      modified.rows,
      { type: 'DELETED', object: row('b', 'Pending', '8') },
      columns,
      true,
    );
    expect(deleted.rows.map((r) => r.name)).toEqual(['a']);
    // An object changed on a page not read yet is left to that page.
    expect(
      applyEvent(deleted.rows, { type: 'MODIFIED', object: row('z', 'Running', '9') }, columns, false).rows,
    ).toHaveLength(1);
    const bookmark = applyEvent(
      deleted.rows,
      { type: 'BOOKMARK', object: { kind: 'Pod', metadata: { resourceVersion: '30' } } },
      columns,
      true,
    );
    expect(bookmark).toEqual({ rows: deleted.rows, resourceVersion: '30' });
  });
});

describe('live lists', () => {
  it('watch from the list version, resume from the last version seen, and relist on 410', async () => {
    let lists = 0;
    const watches: {
      version: string | null;
      bookmarks: string | null;
      signal: AbortSignal;
      stream: ReturnType<typeof stream>;
    }[] = [];
    const fetch = vi.fn(async (request: Request) => {
      const url = new URL(request.url);
      expect(url.pathname).toBe('/k8s-api/dev/api/v1/namespaces/team-a/pods');
      if (url.searchParams.get('watch') === '1') {
        const own = stream();
        watches.push({
          version: url.searchParams.get('resourceVersion'),
          bookmarks: url.searchParams.get('allowWatchBookmarks'),
          signal: request.signal,
          stream: own,
        });
        return own.response;
      }
      lists += 1;
      return json(200, lists === 1 ? list(['web-1', 'web-2'], '10') : list(['web-1', 'web-9'], '50'));
    });
    const client = createKubeClient({
      baseUrl: 'http://c.test',
      fetch,
      sleep: async () => undefined,
      readRetryDelaysMs: [],
    });
    const sleeps: number[] = [];
    const pods = usePagedList(
      client,
      () => ({ cluster: 'dev', path: '/api/v1/namespaces/team-a/pods', labelSelector: '' }),
      {
        watch: true,
        sleep: async (milliseconds) => {
          sleeps.push(milliseconds);
        },
      },
    );
    await pods.loadFirst();
    await vi.waitFor(() => expect(watches).toHaveLength(1));
    expect(watches[0]).toMatchObject({ version: '10', bookmarks: 'true' });
    await vi.waitFor(() => expect(pods.live.value).toBe(true));

    const first = watches[0]!.stream;
    first.push({ type: 'ADDED', object: row('web-3', 'Pending', '11') });
    first.push({ type: 'MODIFIED', object: row('web-1', 'Failed', '12') });
    first.push({ type: 'DELETED', object: row('web-2', 'Running', '13') });
    first.push({ type: 'BOOKMARK', object: { kind: 'Pod', metadata: { resourceVersion: '20' } } });
    await vi.waitFor(() => expect(pods.resourceVersion.value).toBe('20'));
    expect(pods.rows.value.map((r) => `${r.name}:${String(r.cells.Status)}`)).toEqual([
      'web-1:Failed',
      'web-3:Pending',
    ]);
    // The wide column the list did not show still maps by the list's definitions.
    expect(pods.rows.value[1]?.cells).toEqual({ Name: 'web-3', Status: 'Pending', Node: 'node-1' });

    // The stream breaks (the replica serving it died): opened again from the last version seen.
    first.close();
    await vi.waitFor(() => expect(watches).toHaveLength(2));
    expect(watches[1]?.version).toBe('20');
    expect(pods.reconnects.value).toBe(1);
    expect(lists).toBe(1);

    // That version is gone meanwhile: the list is read again and watched from its new version.
    watches[1]!.stream.push({
      type: 'ERROR',
      object: {
        kind: 'Status',
        status: 'Failure',
        reason: 'Expired',
        code: 410,
        message: 'too old resource version: 20 (45)',
      },
    });
    await vi.waitFor(() => expect(watches).toHaveLength(3));
    expect(lists).toBe(2);
    expect(pods.restarted.value).toBe(1);
    expect(watches[2]?.version).toBe('50');
    expect(pods.rows.value.map((r) => r.name)).toEqual(['web-1', 'web-9']);

    pods.stop();
    expect(watches[2]?.signal.aborted).toBe(true);
    expect(pods.live.value).toBe(false);
    expect(sleeps).toEqual([100]);
  });

  it('back off while the watch cannot be opened, then resume', async () => {
    let failures = 3;
    const watches: string[] = [];
    const fetch = vi.fn(async (request: Request) => {
      const url = new URL(request.url);
      if (url.searchParams.get('watch') === '1') {
        watches.push(url.searchParams.get('resourceVersion') ?? '');
        if (failures > 0) {
          failures -= 1;
          throw new TypeError('Failed to fetch');
        }
        return stream().response;
      }
      return json(200, list(['a'], '7'));
    });
    const client = createKubeClient({
      baseUrl: 'http://c.test',
      fetch,
      sleep: async () => undefined,
      readRetryDelaysMs: [],
    });
    const sleeps: number[] = [];
    const pods = usePagedList(
      client,
      () => ({ cluster: 'dev', path: '/api/v1/namespaces/team-a/pods', labelSelector: '' }),
      {
        watch: true,
        sleep: async (milliseconds) => {
          sleeps.push(milliseconds);
        },
      },
    );
    await pods.loadFirst();
    await vi.waitFor(() => expect(pods.live.value).toBe(true));
    expect(watches).toEqual(['7', '7', '7', '7']);
    expect(sleeps).toEqual([250, 500, 1000]);
    pods.stop();
  });
});
