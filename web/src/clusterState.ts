/** The balancer states of one apiserver endpoint, as the API reports them. */
export const ENDPOINT_STATES = ['preferred', 'healthy', 'recovering', 'unchecked', 'failed'] as const;
export type EndpointState = (typeof ENDPOINT_STATES)[number] | 'unknown';

export type ClusterState = 'ok' | 'degraded' | 'down' | 'unknown';

export function endpointState(value: string | undefined): EndpointState {
  return ENDPOINT_STATES.find((state) => state === value) ?? 'unknown';
}

/** A cluster is down when no endpoint works, degraded when some do not, ok when all do. */
export function clusterState(states: readonly EndpointState[]): ClusterState {
  if (states.length === 0 || states.every((state) => state === 'unknown' || state === 'unchecked')) {
    return 'unknown';
  }
  const working = states.filter((state) => state === 'preferred' || state === 'healthy').length;
  if (working === 0) {
    return 'down';
  }
  return working === states.length ? 'ok' : 'degraded';
}

/** Element Plus tag types: the colour says the state, the text says it too. */
export function tagType(
  state: EndpointState | ClusterState,
): 'success' | 'warning' | 'danger' | 'info' | 'primary' {
  switch (state) {
    case 'preferred':
      return 'primary';
    case 'healthy':
    case 'ok':
      return 'success';
    case 'recovering':
    case 'degraded':
      return 'warning';
    case 'failed':
    case 'down':
      return 'danger';
    default:
      return 'info';
  }
}

/** Splits the comma-separated apiserver field into URLs. */
export function splitEndpoints(text: string): string[] {
  return text
    .split(/[,\s]+/)
    .map((part) => part.trim())
    .filter((part) => part !== '');
}
