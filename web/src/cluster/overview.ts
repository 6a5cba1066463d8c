import type { ResourceKind } from './discovery';
import type { KubeClient } from './kubeClient';

interface ObjectMeta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  creationTimestamp?: string;
  [field: string]: unknown;
}

export interface KubeObject {
  metadata?: ObjectMeta;
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [field: string]: unknown;
}

interface KubeList {
  metadata?: { continue?: string; resourceVersion?: string };
  items?: KubeObject[];
}

export interface NodeSummary {
  name: string;
  ready: boolean;
  roles: string[];
  version: string;
  capacity: Record<string, string>;
  allocatable: Record<string, string>;
}

const ROLE_LABEL = 'node-role.kubernetes.io/';

function stringMap(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null) return {};
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).filter(
      (entry): entry is [string, string] => typeof entry[1] === 'string',
    ),
  );
}

export function nodeSummary(node: KubeObject): NodeSummary {
  const labels = node.metadata?.labels ?? {};
  const conditions = (node.status?.conditions ?? []) as { type?: string; status?: string }[];
  const roles = Object.keys(labels)
    .filter((label) => label.startsWith(ROLE_LABEL))
    .map((label) => label.slice(ROLE_LABEL.length))
    .filter((role) => role !== '')
    .sort();
  const nodeInfo = (node.status?.nodeInfo ?? {}) as { kubeletVersion?: string };
  return {
    name: node.metadata?.name ?? '',
    ready: conditions.some((condition) => condition.type === 'Ready' && condition.status === 'True'),
    roles,
    version: nodeInfo.kubeletVersion ?? '',
    capacity: stringMap(node.status?.capacity),
    allocatable: stringMap(node.status?.allocatable),
  };
}

/** How many pods are in each phase (a pod without one counts as Pending, as kubectl shows it). */
export function podPhases(pods: KubeObject[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const pod of pods) {
    const phase =
      typeof pod.status?.phase === 'string' && pod.status.phase !== '' ? pod.status.phase : 'Pending';
    counts[phase] = (counts[phase] ?? 0) + 1;
  }
  return counts;
}

export interface WorkloadBehind {
  kind: string;
  namespace: string;
  name: string;
  desired: number;
  ready: number;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

/**
 * Workloads whose ready count is below the desired one: Deployments and StatefulSets by
 * `spec.replicas` (1 when unset) against `status.readyReplicas`, DaemonSets by
 * `status.desiredNumberScheduled` against `status.numberReady`.
 */
export function workloadsBehind(kind: string, objects: KubeObject[]): WorkloadBehind[] {
  return objects.flatMap((object) => {
    let desired: number;
    let ready: number;
    if (kind === 'DaemonSet') {
      desired = count(object.status?.desiredNumberScheduled);
      ready = count(object.status?.numberReady);
    } else {
      desired = object.spec?.replicas === undefined ? 1 : count(object.spec.replicas);
      ready = count(object.status?.readyReplicas);
    }
    return ready < desired
      ? [
          {
            kind,
            namespace: object.metadata?.namespace ?? '',
            name: object.metadata?.name ?? '',
            desired,
            ready,
          },
        ]
      : [];
  });
}

export interface WarningEvent {
  key: string;
  namespace: string;
  object: string;
  reason: string;
  message: string;
  count: number;
  /** When it was last seen (ISO time), or null. */
  lastSeen: string | null;
}

function eventTime(event: KubeObject): string | null {
  for (const field of ['lastTimestamp', 'eventTime', 'firstTimestamp']) {
    const value = event[field];
    if (typeof value === 'string' && value !== '') return value;
  }
  const series = event.series as { lastObservedTime?: string } | undefined;
  return series?.lastObservedTime ?? event.metadata?.creationTimestamp ?? null;
}

/** The `limit` most recent Warning events, newest first. */
export function recentWarnings(events: KubeObject[], limit: number): WarningEvent[] {
  return events
    .filter((event) => event.type === 'Warning')
    .map((event) => {
      const involved = (event.involvedObject ?? {}) as { kind?: string; name?: string };
      return {
        key: `${event.metadata?.namespace ?? ''}/${event.metadata?.name ?? ''}`,
        namespace: event.metadata?.namespace ?? '',
        object: `${(involved.kind ?? '').toLowerCase()}/${involved.name ?? ''}`,
        reason: typeof event.reason === 'string' ? event.reason : '',
        message: typeof event.message === 'string' ? event.message : '',
        count: count(event.count) || 1,
        lastSeen: eventTime(event),
      };
    })
    .sort((a, b) => (b.lastSeen ?? '').localeCompare(a.lastSeen ?? ''))
    .slice(0, limit);
}

/** Lists stop after this many pages of `LIST_PAGE` objects; the page then says the counts are partial. */
export const LIST_PAGE = 500;
export const MAX_LIST_PAGES = 20;

/** Every object of a list path (page by page), at most `maxPages` pages; `complete` says whether all were read. */
export async function listAll(
  kube: KubeClient,
  cluster: string,
  path: string,
  query: Record<string, string> = {},
  maxPages = MAX_LIST_PAGES,
): Promise<{ items: KubeObject[]; complete: boolean }> {
  const items: KubeObject[] = [];
  let token = '';
  for (let page = 0; page < maxPages; page += 1) {
    const list = await kube.get<KubeList>(cluster, path, {
      query: { ...query, limit: LIST_PAGE, continue: token },
    });
    items.push(...(list.items ?? []));
    token = list.metadata?.continue ?? '';
    if (token === '') return { items, complete: true };
  }
  return { items, complete: false };
}

/** The kinds the overview reads workloads of, when the cluster serves them. */
export const WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet'];

/** The discovered kind named `kind` of group `group`. */
export function findKind(kinds: ResourceKind[], group: string, kind: string): ResourceKind | undefined {
  return kinds.find((candidate) => candidate.group === group && candidate.kind === kind);
}
