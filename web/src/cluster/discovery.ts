import type { KubeClient } from './kubeClient';

/** One kind of a cluster that can be listed, as discovery describes it. */
export interface ResourceKind {
  /** The API group; empty for the core group. */
  group: string;
  version: string;
  /** The plural used in URLs (`pods`). */
  resource: string;
  kind: string;
  namespaced: boolean;
  verbs: string[];
  shortNames: string[];
}

/** `/api/v1` or `/apis/{group}/{version}`. */
export interface ApiResourceList {
  groupVersion?: string;
  resources?: {
    name?: string;
    kind?: string;
    namespaced?: boolean;
    verbs?: string[];
    shortNames?: string[];
  }[];
}

/** `/apis`. */
export interface ApiGroupList {
  groups?: {
    name?: string;
    preferredVersion?: { groupVersion?: string; version?: string };
    versions?: { groupVersion?: string; version?: string }[];
  }[];
}

/** The group and version of a `groupVersion` (`apps/v1`, or `v1` for the core group). */
export function splitGroupVersion(groupVersion: string): { group: string; version: string } {
  const slash = groupVersion.indexOf('/');
  return slash < 0
    ? { group: '', version: groupVersion }
    : { group: groupVersion.slice(0, slash), version: groupVersion.slice(slash + 1) };
}

/**
 * The listable kinds of one resource list: subresources (`pods/log`) and kinds without the
 * `list` verb (`bindings`, reviews) are left out.
 */
export function kindsOf(list: ApiResourceList): ResourceKind[] {
  if (typeof list.groupVersion !== 'string' || list.groupVersion === '') {
    return [];
  }
  const { group, version } = splitGroupVersion(list.groupVersion);
  return (list.resources ?? []).flatMap((resource) => {
    const name = resource.name ?? '';
    const verbs = resource.verbs ?? [];
    if (name === '' || name.includes('/') || !verbs.includes('list') || !resource.kind) {
      return [];
    }
    return [
      {
        group,
        version,
        resource: name,
        kind: resource.kind,
        namespaced: resource.namespaced === true,
        verbs,
        shortNames: resource.shortNames ?? [],
      },
    ];
  });
}

/** The `groupVersion` to read for each group: the preferred one, else the first listed. */
export function preferredGroupVersions(groups: ApiGroupList): string[] {
  return (groups.groups ?? []).flatMap((group) => {
    const chosen = group.preferredVersion?.groupVersion ?? group.versions?.[0]?.groupVersion;
    return chosen ? [chosen] : [];
  });
}

/** Core kinds first, then groups by name; kinds by name within each. */
export function sortKinds(kinds: ResourceKind[]): ResourceKind[] {
  return [...kinds].sort(
    (a, b) =>
      (a.group === '' ? 0 : 1) - (b.group === '' ? 0 : 1) ||
      a.group.localeCompare(b.group) ||
      a.kind.localeCompare(b.kind),
  );
}

export interface Discovery {
  kinds: ResourceKind[];
  /** Group versions whose resource list could not be read (an aggregated API that is down). */
  failedGroupVersions: string[];
}

/** The API path of a group version: `/api/v1` or `/apis/apps/v1`. */
export function groupVersionPath(group: string, version: string): string {
  return group === '' ? `/api/${version}` : `/apis/${group}/${version}`;
}

/**
 * Reads discovery: the core group, the group list, then each group's preferred version at once.
 * A group version that fails is reported, not fatal (like kubectl's partial discovery); the core
 * group or the group list failing is.
 */
export async function loadDiscovery(kube: KubeClient, cluster: string): Promise<Discovery> {
  const [core, groups] = await Promise.all([
    kube.get<ApiResourceList>(cluster, '/api/v1'),
    kube.get<ApiGroupList>(cluster, '/apis'),
  ]);
  const groupVersions = preferredGroupVersions(groups);
  const lists = await Promise.allSettled(
    groupVersions.map((groupVersion) => kube.get<ApiResourceList>(cluster, `/apis/${groupVersion}`)),
  );
  const kinds = kindsOf(core);
  const failedGroupVersions: string[] = [];
  lists.forEach((list, index) => {
    if (list.status === 'fulfilled') {
      kinds.push(...kindsOf(list.value));
    } else {
      failedGroupVersions.push(groupVersions[index] ?? '');
    }
  });
  return { kinds: sortKinds(kinds), failedGroupVersions };
}

/**
 * The API path of one object from the route's parameters: `group` as a route parameter (`core`),
 * `namespace` `-` for a cluster-wide object.
 */
export function objectApiPath(params: {
  group: string;
  version: string;
  resource: string;
  namespace: string;
  object: string;
}): string {
  const base = groupVersionPath(groupFromParam(params.group), params.version);
  const scope = params.namespace === '-' ? '' : `/namespaces/${encodeURIComponent(params.namespace)}`;
  return `${base}${scope}/${params.resource}/${encodeURIComponent(params.object)}`;
}

/** The route parameter of a group: `core` for the core group (a path segment cannot be empty). */
export function groupParam(group: string): string {
  return group === '' ? 'core' : group;
}

export function groupFromParam(param: string): string {
  return param === 'core' ? '' : param;
}
