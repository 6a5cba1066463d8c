import type { KubeObject } from './overview';

interface ContainerShape {
  name?: string;
}

/** The names of a pod's containers, then of its init containers. */
export function podContainers(pod: KubeObject | null): string[] {
  const spec = pod?.spec as { containers?: ContainerShape[]; initContainers?: ContainerShape[] } | undefined;
  return [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])]
    .map((container) => container.name ?? '')
    .filter((name) => name !== '');
}

/** The container kubectl picks when none is named: the `default-container` annotation, else the first. */
export function defaultContainer(pod: KubeObject | null): string {
  const annotations = (pod?.metadata as { annotations?: Record<string, string> } | undefined)?.annotations;
  return annotations?.['kubectl.kubernetes.io/default-container'] ?? podContainers(pod)[0] ?? '';
}
