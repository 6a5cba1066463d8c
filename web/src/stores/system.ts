import { defineStore } from 'pinia';
import { ref } from 'vue';
import { useApi } from '@/api/instance';
import type { Schemas } from '@/api/client';

export type SystemStatus = Schemas['SystemStatus'];
export type Member = Schemas['MemberView'];

/** The HA page's state: the answering replica's view of the group, refreshed by the page. */
export const useSystemStore = defineStore('system', () => {
  const status = ref<SystemStatus | null>(null);
  const error = ref<unknown>(null);
  const loading = ref(false);
  /** When the last answer arrived (milliseconds since the epoch). */
  const refreshedAt = ref<number | null>(null);

  async function refresh(): Promise<void> {
    const api = useApi();
    loading.value = true;
    try {
      status.value = await api.call(api.raw.GET('/kuboard-api/system/status'));
      refreshedAt.value = Date.now();
      error.value = null;
    } catch (failure) {
      // The last good status stays on screen, marked stale by the error.
      error.value = failure;
    } finally {
      loading.value = false;
    }
  }

  async function addMember(id: number, address: string): Promise<void> {
    const api = useApi();
    await api.call(api.raw.POST('/kuboard-api/system/members', { body: { id, address } }));
    await refresh();
  }

  async function removeMember(id: number): Promise<void> {
    const api = useApi();
    await api.call(api.raw.DELETE('/kuboard-api/system/members/{id}', { params: { path: { id } } }));
    await refresh();
  }

  async function replaceMember(id: number, address: string): Promise<void> {
    const api = useApi();
    await api.call(
      api.raw.PUT('/kuboard-api/system/members/{id}', { params: { path: { id } }, body: { address } }),
    );
    await refresh();
  }

  return { status, error, loading, refreshedAt, refresh, addMember, removeMember, replaceMember };
});

/**
 * Warnings about a membership change, as i18n keys, shown in its confirmation. The server refuses
 * the unsafe cases itself (the last voter, an address in use); these say what a change risks.
 */
export function membershipWarnings(
  action: 'add' | 'remove' | 'replace',
  member: { id: number },
  status: SystemStatus,
): string[] {
  const warnings: string[] = [];
  const voters = status.members.filter((entry) => entry.role !== 'learner');
  if (action === 'add' && status.members.some((entry) => entry.id === member.id)) {
    warnings.push('system.warnings.idInUse');
  }
  if (action === 'remove') {
    if (status.leader === member.id) warnings.push('system.warnings.removingLeader');
    if (member.id === status.replica_id) warnings.push('system.warnings.removingThisReplica');
    if (voters.length - 1 < 3 && voters.some((entry) => entry.id === member.id)) {
      warnings.push('system.warnings.noFaultTolerance');
    }
  }
  if (action === 'replace') {
    // While the member is replaced it does not vote: the others must still hold a majority.
    const healthyOthers = status.members.filter((entry) => entry.healthy && entry.id !== member.id).length;
    if (healthyOthers < Math.floor(voters.length / 2) + 1) warnings.push('system.warnings.quorumAtRisk');
  }
  return warnings;
}
