import { ref, type Ref } from 'vue';

/** Loads something for a page and keeps its loading and error state (the last good value stays). */
export function useLoader<T>(load: () => Promise<T>, initial: T) {
  const data = ref(initial) as Ref<T>;
  const loading = ref(false);
  const error = ref<unknown>(null);
  async function reload(): Promise<void> {
    loading.value = true;
    try {
      data.value = await load();
      error.value = null;
    } catch (failure) {
      error.value = failure;
    } finally {
      loading.value = false;
    }
  }
  return { data, loading, error, reload };
}
