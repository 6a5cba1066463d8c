import { computed, ref, shallowRef } from 'vue';

/** One user action (a form's submit): busy while it runs, and the failure it ended with. */
export function useAction() {
  const busy = ref(false);
  const failure = ref<unknown>(null);

  /** Runs `action` unless one is running; answers whether it succeeded. */
  async function run(action: () => Promise<unknown>): Promise<boolean> {
    if (busy.value) return false;
    busy.value = true;
    failure.value = null;
    try {
      await action();
      return true;
    } catch (error) {
      failure.value = error;
      return false;
    } finally {
      busy.value = false;
    }
  }

  return { busy, failure, run };
}

/**
 * A dialog that acts on one item (a form's submit, a confirmation): the item, whether the dialog is
 * open, busy while the action runs, and the failure it ended with. The dialog closes when the action
 * succeeds and stays open with the failure otherwise, so that nothing typed is lost.
 */
export function useDialogAction<T = void>() {
  const current = shallowRef<{ item: T } | null>(null);
  const target = computed(() => current.value?.item ?? null);
  const open = ref(false);
  const { busy, failure, run } = useAction();

  function show(item: T): void {
    current.value = { item };
    failure.value = null;
    open.value = true;
  }

  /** Runs `action` on the item; answers whether it succeeded. */
  async function submit(action: (item: T) => Promise<unknown>): Promise<boolean> {
    const shown = current.value;
    if (shown === null) return false;
    const done = await run(() => action(shown.item));
    if (done) open.value = false;
    return done;
  }

  return { target, open, busy, failure, show, submit };
}

/** A delete (or another irreversible change) asked for, confirmed in a dialog, then performed. */
export function useConfirmDelete<T>(remove: (item: T) => Promise<unknown>) {
  const dialog = useDialogAction<T>();
  return { ...dialog, ask: dialog.show, confirm: () => dialog.submit(remove) };
}
