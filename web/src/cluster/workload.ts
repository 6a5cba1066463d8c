import type { KubeClient } from './kubeClient';
import type { KubeObject } from './overview';

/** The kinds with the workload page (pods, containers, scale, restart): `apps` Deployments and StatefulSets. */
export const WORKLOAD_RESOURCES: readonly string[] = ['deployments', 'statefulsets'];

export function isWorkload(group: string, resource: string): boolean {
  return group === 'apps' && WORKLOAD_RESOURCES.includes(resource);
}

/** The annotation `kubectl rollout restart` sets on the pod template. */
export const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';

export const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';
export const MERGE_PATCH = 'application/merge-patch+json';

interface SelectorRequirement {
  key?: string;
  operator?: string;
  values?: string[];
}

export interface LabelSelectorShape {
  matchLabels?: Record<string, string>;
  matchExpressions?: SelectorRequirement[];
}

/**
 * A `LabelSelector` as the text of a `labelSelector` query (`app=web,tier in (a,b)`); '' when it
 * selects nothing it can express (an empty selector, which on a workload is invalid anyway).
 */
export function selectorText(selector: LabelSelectorShape | undefined): string {
  if (!selector) return '';
  const parts = Object.entries(selector.matchLabels ?? {}).map(([key, value]) => `${key}=${value}`);
  for (const requirement of selector.matchExpressions ?? []) {
    const key = requirement.key ?? '';
    if (key === '') continue;
    const values = (requirement.values ?? []).join(',');
    switch (requirement.operator) {
      case 'In':
        parts.push(`${key} in (${values})`);
        break;
      case 'NotIn':
        parts.push(`${key} notin (${values})`);
        break;
      case 'Exists':
        parts.push(key);
        break;
      case 'DoesNotExist':
        parts.push(`!${key}`);
        break;
      default:
        break;
    }
  }
  return parts.join(',');
}

/** The patch `kubectl rollout restart` sends: a new `restartedAt` on the pod template, so its pods are replaced. */
export function restartPatch(now: Date): unknown {
  return {
    spec: {
      template: { metadata: { annotations: { [RESTARTED_AT]: now.toISOString().replace(/\.\d+Z$/, 'Z') } } },
    },
  };
}

/** The merge patch of the `scale` subresource `kubectl scale` sends. */
export function scalePatch(replicas: number): unknown {
  return { spec: { replicas } };
}

/** Whether `text` is a replica count the apiserver takes: a whole number from 0. */
export function validReplicas(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 100_000;
}

export interface ContainerSummary {
  name: string;
  image: string;
  init: boolean;
  ports: string;
  requests: string;
  limits: string;
}

interface ContainerShape {
  name?: string;
  image?: string;
  ports?: { containerPort?: number; protocol?: string; name?: string }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}

function resourceText(values: Record<string, string> | undefined): string {
  return Object.entries(values ?? {})
    .map(([name, value]) => `${name} ${value}`)
    .join(' · ');
}

/** The init and app containers of a workload's pod template. */
export function containersOf(workload: KubeObject): ContainerSummary[] {
  const spec = (
    workload.spec as {
      template?: { spec?: { containers?: ContainerShape[]; initContainers?: ContainerShape[] } };
    }
  )?.template?.spec;
  const summary = (container: ContainerShape, init: boolean): ContainerSummary => ({
    name: container.name ?? '',
    image: container.image ?? '',
    init,
    ports: (container.ports ?? [])
      .map(
        (port) =>
          `${port.containerPort ?? '?'}/${port.protocol ?? 'TCP'}${port.name ? ` (${port.name})` : ''}`,
      )
      .join(', '),
    requests: resourceText(container.resources?.requests),
    limits: resourceText(container.resources?.limits),
  });
  return [
    ...(spec?.initContainers ?? []).map((container) => summary(container, true)),
    ...(spec?.containers ?? []).map((container) => summary(container, false)),
  ];
}

/** The desired replica count of a workload (`spec.replicas`, 1 when unset as the apiserver defaults it). */
export function desiredReplicas(workload: KubeObject): number {
  const replicas = (workload.spec as { replicas?: unknown } | undefined)?.replicas;
  return typeof replicas === 'number' ? replicas : 1;
}

/** What a `SelfSubjectAccessReview` asks. */
export interface AccessAttributes {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/**
 * Asks the apiserver (through the proxy, so as the user Kuboard impersonates) whether the user may
 * do `attributes`. Only a clear "allowed" counts; a failed review counts as not allowed, since the
 * button it guards would only meet the same refusal. The server still decides every request.
 */
export async function canI(
  kube: KubeClient,
  cluster: string,
  attributes: AccessAttributes,
): Promise<boolean> {
  try {
    const review = await kube.send<{ status?: { allowed?: unknown } }>(
      cluster,
      'POST',
      '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
      {
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SelfSubjectAccessReview',
          spec: { resourceAttributes: attributes },
        },
      },
    );
    return review.status?.allowed === true;
  } catch {
    return false;
  }
}

/**
 * Whether the user may replace (`update`) one object, named by the route's parameters (`group`
 * `core` for the core group, `namespace` `-` for a cluster-wide object).
 */
export function canUpdateObject(
  kube: KubeClient,
  cluster: string,
  params: { group: string; resource: string; namespace: string; object: string },
): Promise<boolean> {
  return canI(kube, cluster, {
    verb: 'update',
    group: params.group === 'core' ? '' : params.group,
    resource: params.resource,
    namespace: params.namespace === '-' ? undefined : params.namespace,
    name: params.object,
  });
}

export interface WorkloadPermissions {
  scale: boolean;
  restart: boolean;
  delete: boolean;
}

/** The actions of the workload page the user may take, asked all at once. */
export async function workloadPermissions(
  kube: KubeClient,
  cluster: string,
  target: { group: string; resource: string; namespace: string; name: string },
): Promise<WorkloadPermissions> {
  const base = {
    group: target.group,
    resource: target.resource,
    namespace: target.namespace,
    name: target.name,
  };
  const [scale, restart, remove] = await Promise.all([
    canI(kube, cluster, { ...base, verb: 'patch', subresource: 'scale' }),
    canI(kube, cluster, { ...base, verb: 'patch' }),
    canI(kube, cluster, { ...base, verb: 'delete' }),
  ]);
  return { scale, restart, delete: remove };
}

/** The annotation the Deployment controller numbers a Deployment's ReplicaSets with. */
export const REVISION = 'deployment.kubernetes.io/revision';
export const JSON_PATCH = 'application/json-patch+json';
const POD_TEMPLATE_HASH = 'pod-template-hash';

/** One revision of a Deployment: a ReplicaSet it controls. */
export interface Revision {
  revision: number;
  name: string;
  images: string;
  replicas: number;
  created: string;
  /** The newest revision: the Deployment's template as it is. */
  current: boolean;
  replicaSet: KubeObject;
}

interface OwnerReference {
  uid?: string;
  controller?: boolean;
}

/**
 * A Deployment's revision history, newest first, as `kubectl rollout history` reads it: the
 * ReplicaSets the Deployment controls (owner reference with its uid), numbered by their
 * `deployment.kubernetes.io/revision` annotation (those without one are left out).
 */
export function revisionsOf(deployment: KubeObject, replicaSets: readonly KubeObject[]): Revision[] {
  const uid = deployment.metadata?.uid;
  const revisions: Revision[] = [];
  for (const replicaSet of replicaSets) {
    const owners = (replicaSet.metadata?.ownerReferences ?? []) as OwnerReference[];
    if (typeof uid !== 'string' || !owners.some((owner) => owner.controller === true && owner.uid === uid)) {
      continue;
    }
    const revision = Number(replicaSet.metadata?.annotations?.[REVISION]);
    if (!Number.isInteger(revision) || revision <= 0) continue;
    revisions.push({
      revision,
      name: replicaSet.metadata?.name ?? '',
      images: containersOf(replicaSet)
        .map((container) => container.image)
        .join(', '),
      replicas: desiredReplicas(replicaSet),
      created: replicaSet.metadata?.creationTimestamp ?? '',
      current: false,
      replicaSet,
    });
  }
  revisions.sort((a, b) => b.revision - a.revision);
  const newest = revisions[0];
  if (newest) newest.current = true;
  return revisions;
}

/**
 * The JSON patch of a rollback to `replicaSet`, as `kubectl rollout undo` sends it: the
 * Deployment's pod template replaced by the ReplicaSet's, without the `pod-template-hash` label
 * the controller added (the controller then finds that ReplicaSet again and renumbers it).
 */
export function rollbackPatch(replicaSet: KubeObject): unknown[] {
  const template = JSON.parse(
    JSON.stringify((replicaSet.spec as { template?: unknown })?.template ?? {}),
  ) as {
    metadata?: { labels?: Record<string, string> };
  };
  if (template.metadata?.labels) delete template.metadata.labels[POD_TEMPLATE_HASH];
  return [{ op: 'replace', path: '/spec/template', value: template }];
}
