import { defineStore } from 'pinia';
import { ref } from 'vue';

/**
 * Whether the replicas are reachable and whether strict audit pauses changes, for the banners of
 * the shell. A change that got no answer sets `reconnecting`; the next answer from any replica
 * clears it; the user may dismiss the banner meanwhile.
 */
export const useConnectionStore = defineStore('connection', () => {
  const reconnecting = ref(false);
  const dismissed = ref(false);
  const auditPaused = ref(false);

  function changeUnreachable(): void {
    reconnecting.value = true;
    dismissed.value = false;
  }

  function reachable(): void {
    reconnecting.value = false;
  }

  function dismiss(): void {
    dismissed.value = true;
  }

  function setAuditPaused(paused: boolean): void {
    auditPaused.value = paused;
  }

  return { reconnecting, dismissed, auditPaused, changeUnreachable, reachable, dismiss, setAuditPaused };
});
