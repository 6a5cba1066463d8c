import { computed, ref } from 'vue';
import { isApiError } from '@/api/errors';
import type { KubeClient } from './kubeClient';
import type { KubeObject } from './overview';
import { hideSecretValues, toYaml } from './yaml';
import {
  editableObject,
  identityChange,
  lineDiff,
  objectToSend,
  parseDocuments,
  type LineDiff,
} from './yamlEdit';

/** Why the text was not sent: an i18n key of `workspace.edit` and its parameters. */
export interface EditProblem {
  key: 'parseError' | 'oneDocument' | 'identityChanged';
  params: Record<string, string | number>;
}

export interface EditPreview {
  /** The text the preview was made from; Apply needs the editor to hold it still. */
  text: string;
  body: Record<string, unknown>;
  diff: LineDiff;
}

/**
 * The state of editing one object as YAML: the object the user started from, the text, a preview
 * (a server-side dry run of the PUT and its line diff), the apply, and a 409 Conflict with its
 * reload. `path` is the object's API path below the cluster. Revealed Secret values are held here,
 * in memory, only.
 */
export function useYamlEdit(kube: KubeClient, target: () => { cluster: string; path: string }) {
  const original = ref<KubeObject | null>(null);
  const loading = ref(false);
  const loadError = ref<unknown>(null);
  const revealed = ref(false);
  const text = ref('');
  const problem = ref<EditProblem | null>(null);
  const failure = ref<unknown>(null);
  const conflict = ref(false);
  const busy = ref(false);
  const preview = ref<EditPreview | null>(null);
  const appliedVersion = ref('');
  /** The user's text as it was when they reloaded after a conflict. */
  const yourText = ref<string | null>(null);

  function shown(object: KubeObject): KubeObject {
    const editable = editableObject(object);
    return revealed.value ? editable : hideSecretValues(editable);
  }
  const startText = computed(() => (original.value ? toYaml(shown(original.value)) : ''));
  const dirty = computed(() => text.value !== startText.value);
  const isSecret = computed(() => original.value?.kind === 'Secret');
  const previewCurrent = computed(() => preview.value !== null && preview.value.text === text.value);
  const previewChanges = computed(
    () => preview.value !== null && preview.value.diff.added + preview.value.diff.removed > 0,
  );

  function clearOutcome(): void {
    problem.value = null;
    failure.value = null;
    conflict.value = false;
    preview.value = null;
    appliedVersion.value = '';
  }

  async function load(): Promise<void> {
    loading.value = true;
    try {
      const { cluster, path } = target();
      original.value = await kube.get<KubeObject>(cluster, path);
      text.value = startText.value;
      loadError.value = null;
    } catch (error) {
      loadError.value = error;
    } finally {
      loading.value = false;
    }
  }

  /** Opens the object afresh (values hidden, no earlier outcome). */
  async function open(): Promise<void> {
    revealed.value = false;
    clearOutcome();
    yourText.value = null;
    await load();
  }

  /** Shows or hides a Secret's values; only before the text is changed, so no edit is lost. */
  function toggleReveal(): void {
    if (dirty.value) return;
    revealed.value = !revealed.value;
    text.value = startText.value;
  }

  /** The edited object to send, or null with `problem` set (nothing is sent then). */
  function bodyFromText(): Record<string, unknown> | null {
    const base = original.value;
    if (!base) return null;
    const parsed = parseDocuments(text.value);
    if (parsed.problem) {
      problem.value = { key: 'parseError', params: { ...parsed.problem } };
      return null;
    }
    const [document] = parsed.documents;
    if (parsed.documents.length !== 1 || !document) {
      problem.value = { key: 'oneDocument', params: { count: parsed.documents.length } };
      return null;
    }
    const changed = identityChange(document, base);
    if (changed !== null) {
      problem.value = { key: 'identityChanged', params: { field: changed } };
      return null;
    }
    return objectToSend(document, base);
  }

  function handle(error: unknown): void {
    if (isApiError(error) && error.status === 409) {
      conflict.value = true;
    } else {
      failure.value = error;
    }
  }

  /** Sends the edited object as a dry run and keeps the diff of the start object and its answer. */
  async function runPreview(): Promise<void> {
    clearOutcome();
    const body = bodyFromText();
    const base = original.value;
    if (!body || !base) return;
    busy.value = true;
    const sentText = text.value;
    try {
      const { cluster, path } = target();
      const result = await kube.send<KubeObject>(cluster, 'PUT', path, { query: { dryRun: 'All' }, body });
      preview.value = { text: sentText, body, diff: lineDiff(toYaml(shown(base)), toYaml(shown(result))) };
    } catch (error) {
      handle(error);
    } finally {
      busy.value = false;
    }
  }

  /** Sends the previewed object for real; the editor then starts from the stored result. */
  async function apply(): Promise<void> {
    const ready = preview.value;
    if (!ready || !previewCurrent.value) return;
    busy.value = true;
    failure.value = null;
    try {
      const { cluster, path } = target();
      const result = await kube.send<KubeObject>(cluster, 'PUT', path, { body: ready.body });
      original.value = result;
      text.value = startText.value;
      preview.value = null;
      appliedVersion.value = result.metadata?.resourceVersion ?? '';
    } catch (error) {
      handle(error);
    } finally {
      busy.value = false;
    }
  }

  /** After a conflict: the current object in the editor, the user's text kept to copy from. */
  async function reloadAfterConflict(): Promise<void> {
    yourText.value = text.value;
    clearOutcome();
    await load();
  }

  return {
    original,
    loading,
    loadError,
    revealed,
    text,
    dirty,
    isSecret,
    problem,
    failure,
    conflict,
    busy,
    preview,
    previewCurrent,
    previewChanges,
    appliedVersion,
    yourText,
    open,
    load,
    toggleReveal,
    runPreview,
    apply,
    reloadAfterConflict,
  };
}
