import { defineStore } from 'pinia';
import { ref } from 'vue';
import { useApi } from '@/api/instance';
import type { Schemas } from '@/api/client';
import { endpointState, type EndpointState } from '@/clusterState';

export type Cluster = Schemas['ClusterResponse'];
export type EndpointStatus = Schemas['EndpointStatusView'];

/** How many endpoint-state requests run at once (the API has no bulk form). */
const ENDPOINT_CONCURRENCY = 6;

/** The cluster list and the balancer state of the endpoints of the clusters on screen. */
export const useClustersStore = defineStore('clusters', () => {
  const clusters = ref<Cluster[]>([]);
  const loading = ref(false);
  const error = ref<unknown>(null);
  const loaded = ref(false);
  /** Endpoint states by cluster name; absent while not fetched. */
  const endpoints = ref<Record<string, EndpointStatus[]>>({});
  const endpointErrors = ref<Record<string, unknown>>({});

  async function load(): Promise<void> {
    const api = useApi();
    loading.value = true;
    try {
      const list = await api.call(api.raw.GET('/kuboard-api/clusters'));
      clusters.value = [...list].sort((a, b) => a.name.localeCompare(b.name));
      error.value = null;
      loaded.value = true;
    } catch (failure) {
      error.value = failure;
    } finally {
      loading.value = false;
    }
  }

  async function loadEndpoints(names: readonly string[]): Promise<void> {
    const api = useApi();
    const queue = [...names];
    const worker = async (): Promise<void> => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
        try {
          const answer = await api.call(
            api.raw.GET('/kuboard-api/clusters/{name}/endpoints', { params: { path: { name } } }),
          );
          endpoints.value = { ...endpoints.value, [name]: answer.endpoints };
          const { [name]: _dropped, ...rest } = endpointErrors.value;
          endpointErrors.value = rest;
        } catch (failure) {
          endpointErrors.value = { ...endpointErrors.value, [name]: failure };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(ENDPOINT_CONCURRENCY, queue.length) }, worker));
  }

  /** Each configured endpoint of a cluster with its balancer state (`unknown` until known). */
  function endpointStates(
    cluster: Cluster,
  ): { url: string; state: EndpointState; status?: EndpointStatus }[] {
    const reported = endpoints.value[cluster.name] ?? [];
    return cluster.endpoints.map((url, index) => {
      // The balancer may report a normalised URL; the position is the same as in the cluster.
      const status = reported.find((entry) => entry.url === url) ?? reported[index];
      return { url, state: endpointState(status?.state), status };
    });
  }

  function forget(name: string): void {
    clusters.value = clusters.value.filter((cluster) => cluster.name !== name);
    const { [name]: _dropped, ...rest } = endpoints.value;
    endpoints.value = rest;
  }

  return {
    clusters,
    loading,
    error,
    loaded,
    endpoints,
    endpointErrors,
    load,
    loadEndpoints,
    endpointStates,
    forget,
  };
});
