import { defineStore } from 'pinia';
import { ref } from 'vue';
import { loadDiscovery, type Discovery, type ResourceKind } from './discovery';
import { useKube } from './kubeClient';
import { listAll } from './overview';

/**
 * The cluster the workspace shows: its discovered kinds and its namespaces (for the picker),
 * read once when the workspace opens a cluster and again on `reload`.
 */
export const useWorkspaceStore = defineStore('workspace', () => {
  const cluster = ref('');
  const discovery = ref<Discovery | null>(null);
  const discoveryLoading = ref(false);
  const discoveryError = ref<unknown>(null);
  const namespaces = ref<string[]>([]);
  const namespacesError = ref<unknown>(null);
  let generation = 0;

  async function load(name: string): Promise<void> {
    generation += 1;
    const mine = generation;
    cluster.value = name;
    discoveryLoading.value = true;
    const kube = useKube();
    const [kinds, names] = await Promise.allSettled([
      loadDiscovery(kube, name),
      listAll(kube, name, '/api/v1/namespaces'),
    ]);
    if (mine !== generation) return;
    discoveryLoading.value = false;
    if (kinds.status === 'fulfilled') {
      discovery.value = kinds.value;
      discoveryError.value = null;
    } else {
      discovery.value = null;
      discoveryError.value = kinds.reason;
    }
    if (names.status === 'fulfilled') {
      namespaces.value = names.value.items
        .map((item) => item.metadata?.name ?? '')
        .filter((item) => item !== '')
        .sort();
      namespacesError.value = null;
    } else {
      namespaces.value = [];
      namespacesError.value = names.reason;
    }
  }

  /** Opens `name` (reads it when it is not the cluster already shown). */
  async function open(name: string): Promise<void> {
    if (name !== cluster.value || (discovery.value === null && !discoveryLoading.value)) {
      discovery.value = null;
      namespaces.value = [];
      await load(name);
    }
  }

  async function reload(): Promise<void> {
    await load(cluster.value);
  }

  function kind(group: string, version: string, resource: string): ResourceKind | undefined {
    return discovery.value?.kinds.find(
      (candidate) =>
        candidate.group === group && candidate.version === version && candidate.resource === resource,
    );
  }

  return {
    cluster,
    discovery,
    discoveryLoading,
    discoveryError,
    namespaces,
    namespacesError,
    open,
    reload,
    kind,
  };
});
