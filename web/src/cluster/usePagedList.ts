import { ref, shallowRef } from 'vue';
import { isApiError } from '@/api/errors';
import { groupVersionPath, type ResourceKind } from './discovery';
import { TABLE_ACCEPT, type KubeClient } from './kubeClient';
import { mapTable, type TableColumn, type TableRow } from './table';
import { applyEvent, errorCode, watchEvents } from './watch';

/** Rows asked for per page (`limit`). */
export const PAGE_SIZE = 500;
/** Waits before opening a broken watch again; the last one repeats. */
export const RECONNECT_DELAYS_MS: readonly number[] = [100, 250, 500, 1000, 2000];

/** The list path of a kind, in `namespace` when it is namespaced and one is given (else all). */
export function listPath(
  kind: Pick<ResourceKind, 'group' | 'version' | 'resource' | 'namespaced'>,
  namespace: string,
): string {
  const base = groupVersionPath(kind.group, kind.version);
  return kind.namespaced && namespace !== ''
    ? `${base}/namespaces/${encodeURIComponent(namespace)}/${kind.resource}`
    : `${base}/${kind.resource}`;
}

export interface ListSource {
  cluster: string;
  /** From `listPath`. */
  path: string;
  labelSelector: string;
  /** `fieldSelector` of the list and its watch (`involvedObject.name=web`); none when absent. */
  fieldSelector?: string;
}

export interface PagedListOptions {
  pageSize?: number;
  /** Keep the rows current with a watch from the list's version (`stop` ends it). */
  watch?: boolean;
  sleep?: (milliseconds: number) => Promise<void>;
}

/** A version the apiserver no longer has (its history was compacted): 410 Gone. */
function isExpired(error: unknown): boolean {
  return isApiError(error) && (error.status === 410 || error.code === 'Expired');
}

const realSleep = (milliseconds: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, milliseconds);
  });

/**
 * A list read page by page with `limit` and `continue`, as printer-column rows. `loadFirst`
 * starts over (a new source, a retry); `loadMore` adds the next page. A continuation that
 * expired (410) starts the list over from the first page, which `restarted` counts.
 *
 * With `watch`, the rows then follow the server: a watch from the list's `resourceVersion`
 * (bookmarks asked for, so that a quiet list still learns newer versions); when the stream breaks
 * (a replica died, the load balancer closed it) it is opened again from the last version seen,
 * and when that version is gone (410) the list is read again. `live` says whether a stream is open;
 * `reconnects` counts the re-openings.
 */
export function usePagedList(kube: KubeClient, source: () => ListSource, options: PagedListOptions = {}) {
  const pageSize = options.pageSize ?? PAGE_SIZE;
  const sleep = options.sleep ?? realSleep;
  const columns = shallowRef<TableColumn[]>([]);
  const rows = shallowRef<TableRow[]>([]);
  const loading = ref(false);
  const error = ref<unknown>(null);
  const continueToken = ref('');
  const resourceVersion = ref('');
  const restarted = ref(0);
  const live = ref(false);
  const reconnects = ref(0);
  let allColumns: TableColumn[] = [];
  /** Answers of an older request (the source changed since) are dropped. */
  let generation = 0;
  let controller: AbortController | null = null;

  async function fetchPage(token: string) {
    const { cluster, path, labelSelector, fieldSelector } = source();
    return kube.get<unknown>(cluster, path, {
      accept: TABLE_ACCEPT,
      query: { limit: pageSize, continue: token, labelSelector, fieldSelector },
    });
  }

  function stop(): void {
    generation += 1;
    controller?.abort();
    controller = null;
    live.value = false;
  }

  async function loadFirst(): Promise<void> {
    stop();
    const mine = generation;
    loading.value = true;
    try {
      const page = mapTable(await fetchPage(''));
      if (mine !== generation) return;
      columns.value = page.columns;
      allColumns = page.allColumns;
      rows.value = page.rows;
      continueToken.value = page.continueToken;
      resourceVersion.value = page.resourceVersion;
      error.value = null;
    } catch (failure) {
      if (mine !== generation) return;
      error.value = failure;
      rows.value = [];
      continueToken.value = '';
      return;
    } finally {
      if (mine === generation) loading.value = false;
    }
    if (options.watch === true && resourceVersion.value !== '') {
      void follow(mine);
    }
  }

  async function loadMore(): Promise<void> {
    if (continueToken.value === '' || loading.value) return;
    const mine = generation;
    loading.value = true;
    try {
      const page = mapTable(await fetchPage(continueToken.value));
      if (mine !== generation) return;
      const seen = new Set(rows.value.map((row) => row.key));
      rows.value = [...rows.value, ...page.rows.filter((row) => !seen.has(row.key))];
      continueToken.value = page.continueToken;
      error.value = null;
    } catch (failure) {
      if (mine !== generation) return;
      if (isExpired(failure)) {
        loading.value = false;
        restarted.value += 1;
        await loadFirst();
        return;
      }
      error.value = failure;
    } finally {
      if (mine === generation) loading.value = false;
    }
  }

  /** Reads one watch stream; true when the version expired and the list must be read again. */
  async function watchOnce(mine: number, signal: AbortSignal): Promise<boolean> {
    const { cluster, path, labelSelector, fieldSelector } = source();
    const response = await kube.open(cluster, path, {
      accept: TABLE_ACCEPT,
      signal,
      query: {
        watch: 1,
        resourceVersion: resourceVersion.value,
        allowWatchBookmarks: true,
        labelSelector,
        fieldSelector,
      },
    });
    if (response.body === null) return false;
    live.value = true;
    for await (const event of watchEvents(response.body)) {
      if (mine !== generation) return false;
      if (event.type === 'ERROR') {
        return errorCode(event) === 410;
      }
      const applied = applyEvent(rows.value, event, allColumns, continueToken.value === '');
      rows.value = applied.rows;
      if (applied.resourceVersion !== '') resourceVersion.value = applied.resourceVersion;
    }
    return false;
  }

  async function follow(mine: number): Promise<void> {
    let attempt = 0;
    while (mine === generation) {
      const own = new AbortController();
      controller = own;
      const versionBefore = resourceVersion.value;
      let expired = false;
      try {
        expired = await watchOnce(mine, own.signal);
      } catch (failure) {
        if (own.signal.aborted || mine !== generation) return;
        expired = isExpired(failure);
      }
      if (mine !== generation) return;
      live.value = false;
      if (expired) {
        restarted.value += 1;
        await loadFirst();
        return;
      }
      // A stream that moved the version on was healthy: the next break starts the waits over.
      attempt = resourceVersion.value === versionBefore ? attempt + 1 : 0;
      reconnects.value += 1;
      await sleep(RECONNECT_DELAYS_MS[Math.min(attempt, RECONNECT_DELAYS_MS.length - 1)] ?? 0);
    }
  }

  return {
    columns,
    rows,
    loading,
    error,
    continueToken,
    resourceVersion,
    restarted,
    live,
    reconnects,
    loadFirst,
    loadMore,
    stop,
  };
}
