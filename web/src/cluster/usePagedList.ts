import { ref, shallowRef } from 'vue';
import { isApiError } from '@/api/errors';
import { groupVersionPath, type ResourceKind } from './discovery';
import { TABLE_ACCEPT, type KubeClient } from './kubeClient';
import { mapTable, type TableColumn, type TableRow } from './table';

/** Rows asked for per page (`limit`). */
export const PAGE_SIZE = 500;

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
}

/** A `continue` token the apiserver no longer knows (its history was compacted): 410 Gone. */
function isExpired(error: unknown): boolean {
  return isApiError(error) && (error.status === 410 || error.code === 'Expired');
}

/**
 * A list read page by page with `limit` and `continue`, as printer-column rows. `loadFirst`
 * starts over (a new source, a retry); `loadMore` adds the next page. A continuation that
 * expired (410) starts the list over from the first page, which the caller is told through
 * `restarted`: the rows then are a fresh, consistent list.
 */
export function usePagedList(kube: KubeClient, source: () => ListSource, pageSize = PAGE_SIZE) {
  const columns = shallowRef<TableColumn[]>([]);
  const rows = shallowRef<TableRow[]>([]);
  const loading = ref(false);
  const error = ref<unknown>(null);
  const continueToken = ref('');
  const resourceVersion = ref('');
  const restarted = ref(0);
  /** Answers of an older request (the source changed since) are dropped. */
  let generation = 0;

  async function fetchPage(token: string) {
    const { cluster, path, labelSelector } = source();
    return kube.get<unknown>(cluster, path, {
      accept: TABLE_ACCEPT,
      query: { limit: pageSize, continue: token, labelSelector },
    });
  }

  async function loadFirst(): Promise<void> {
    generation += 1;
    const mine = generation;
    loading.value = true;
    try {
      const page = mapTable(await fetchPage(''));
      if (mine !== generation) return;
      columns.value = page.columns;
      rows.value = page.rows;
      continueToken.value = page.continueToken;
      resourceVersion.value = page.resourceVersion;
      error.value = null;
    } catch (failure) {
      if (mine !== generation) return;
      error.value = failure;
      rows.value = [];
      continueToken.value = '';
    } finally {
      if (mine === generation) loading.value = false;
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

  return { columns, rows, loading, error, continueToken, resourceVersion, restarted, loadFirst, loadMore };
}
