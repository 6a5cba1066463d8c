import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import { useApi } from '@/api/instance';
import type { Schemas } from '@/api/client';

export type AuditRow = Schemas['AuditRow'];

export interface AuditFilters {
  user: string;
  cluster: string;
  verb: string;
  resource: string;
  namespace: string;
  status: string;
  /** Milliseconds since the epoch, both ends inclusive; null for no bound. */
  from: number | null;
  to: number | null;
}

export const PAGE_SIZE = 50;

export function emptyFilters(): AuditFilters {
  return { user: '', cluster: '', verb: '', resource: '', namespace: '', status: '', from: null, to: null };
}

const blankToUndefined = (value: string) => (value.trim() === '' ? undefined : value.trim());

/** The query the API takes for these filters: the server filters on every one of them. */
export function auditQuery(filters: AuditFilters, cursor: string | null) {
  const status = Number.parseInt(filters.status, 10);
  return {
    user: blankToUndefined(filters.user),
    cluster: blankToUndefined(filters.cluster),
    verb: blankToUndefined(filters.verb),
    resource: blankToUndefined(filters.resource),
    namespace: blankToUndefined(filters.namespace),
    status: Number.isFinite(status) ? status : undefined,
    from: filters.from === null ? undefined : filters.from * 1000,
    to: filters.to === null ? undefined : filters.to * 1000,
    limit: PAGE_SIZE,
    cursor: cursor ?? undefined,
  };
}

/**
 * Audit events a page at a time, newest first. `cursors` holds the cursor of every page seen so
 * far, so that "previous" goes back without the API knowing about it.
 */
export const useAuditStore = defineStore('audit', () => {
  const filters = ref<AuditFilters>(emptyFilters());
  const events = ref<AuditRow[]>([]);
  const nextCursor = ref<string | null>(null);
  const cursors = ref<(string | null)[]>([null]);
  const loading = ref(false);
  const error = ref<unknown>(null);

  const pageNumber = computed(() => cursors.value.length);
  async function fetchPage(cursor: string | null): Promise<void> {
    const api = useApi();
    loading.value = true;
    try {
      const page = await api.call(
        api.raw.GET('/kuboard-api/audit', { params: { query: auditQuery(filters.value, cursor) } }),
      );
      events.value = page.events;
      nextCursor.value = page.next_cursor ?? null;
      error.value = null;
    } catch (failure) {
      error.value = failure;
      throw failure;
    } finally {
      loading.value = false;
    }
  }

  async function search(): Promise<void> {
    cursors.value = [null];
    await fetchPage(null).catch(() => undefined);
  }

  async function next(): Promise<void> {
    if (nextCursor.value === null) return;
    const cursor = nextCursor.value;
    try {
      await fetchPage(cursor);
      cursors.value = [...cursors.value, cursor];
    } catch {
      // Shown through `error`; the page stays where it was.
    }
  }

  async function previous(): Promise<void> {
    if (cursors.value.length < 2) return;
    const before = cursors.value.slice(0, -1);
    try {
      await fetchPage(before[before.length - 1] ?? null);
      cursors.value = before;
    } catch {
      // Shown through `error`.
    }
  }

  function reset(): void {
    filters.value = emptyFilters();
  }

  return {
    filters,
    events,
    nextCursor,
    cursors,
    pageNumber,
    loading,
    error,
    search,
    next,
    previous,
    reset,
  };
});
