import { diffLines } from 'diff';
import { parseAllDocuments } from 'yaml';
import {
  groupVersionPath,
  kindsOf,
  splitGroupVersion,
  type ApiResourceList,
  type ResourceKind,
} from './discovery';
import type { KubeClient } from './kubeClient';
import type { KubeObject } from './overview';
import { HIDDEN } from './yaml';

/**
 * Editing and creating objects from YAML: what the editor shows, reading the user's text back,
 * the line diff of a dry run, and where each created document goes. Loaded with the editor only.
 */

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A JSON copy (the object may be a reactive proxy). */
function copyOf<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/**
 * The object as the editor shows it: without `metadata.managedFields`, which only the server
 * writes and which would drown the fields a user edits (kubectl edit leaves them out the same way).
 */
export function editableObject(object: KubeObject): KubeObject {
  const copy = copyOf(object) as Json;
  if (isRecord(copy.metadata)) {
    delete copy.metadata.managedFields;
  }
  return copy as KubeObject;
}

/** A YAML problem at a line of the user's text (1-based). */
export interface YamlProblem {
  line: number;
  message: string;
}

export type ParsedDocuments =
  { documents: Json[]; problem: null } | { documents: null; problem: YamlProblem };

/**
 * The objects of a (multi-document, `---`) YAML text. Empty documents are skipped; the first syntax
 * error, or a document that is not a mapping, is reported with its line and nothing is returned.
 */
export function parseDocuments(text: string): ParsedDocuments {
  const documents: Json[] = [];
  for (const document of parseAllDocuments(text)) {
    const error = document.errors[0];
    if (error) {
      return {
        documents: null,
        problem: { line: error.linePos?.[0].line ?? 1, message: error.message.split('\n')[0] ?? '' },
      };
    }
    let value: unknown;
    try {
      value = document.toJS();
    } catch (cause) {
      const line = document.contents?.range ? lineOf(text, document.contents.range[0]) : 1;
      return {
        documents: null,
        problem: { line, message: cause instanceof Error ? cause.message : String(cause) },
      };
    }
    if (value === null || value === undefined) continue;
    if (!isRecord(value)) {
      const start = document.contents?.range?.[0] ?? 0;
      return {
        documents: null,
        problem: {
          line: lineOf(text, start),
          message: 'a document must be a mapping (apiVersion, kind, metadata, …)',
        },
      };
    }
    documents.push(value);
  }
  return { documents, problem: null };
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let index = 0; index < offset && index < text.length; index += 1) {
    if (text[index] === '\n') line += 1;
  }
  return line;
}

/**
 * The edited object to send for `original`: the values a hidden Secret showed as `HIDDEN` are put
 * back from the original (the user never saw them, so cannot have meant to set them to dots), and
 * `metadata.resourceVersion` is the version the user started from, whatever the text says, so that
 * a change made by someone else in between is a 409 Conflict and never silently overwritten.
 */
export function objectToSend(edited: Json, original: KubeObject): Json {
  const result = copyOf(edited);
  if (result.kind === 'Secret' && original.kind === 'Secret') {
    for (const field of ['data', 'stringData']) {
      const values = result[field];
      const before = (original as Json)[field];
      if (!isRecord(values)) continue;
      for (const [name, value] of Object.entries(values)) {
        if (value === HIDDEN && isRecord(before) && name in before) {
          values[name] = before[name];
        }
      }
    }
    const annotations = isRecord(result.metadata) ? result.metadata.annotations : undefined;
    const originalAnnotations = original.metadata?.annotations;
    if (
      isRecord(annotations) &&
      annotations[LAST_APPLIED] === HIDDEN &&
      originalAnnotations?.[LAST_APPLIED]
    ) {
      annotations[LAST_APPLIED] = originalAnnotations[LAST_APPLIED];
    }
  }
  if (!isRecord(result.metadata)) result.metadata = {};
  (result.metadata as Json).resourceVersion = original.metadata?.resourceVersion ?? '';
  return result;
}

/** Why an edited text cannot replace the object (another kind or name), or null. */
export function identityChange(edited: Json, original: KubeObject): string | null {
  const metadata = isRecord(edited.metadata) ? edited.metadata : {};
  if (edited.kind !== original.kind) return 'kind';
  if (edited.apiVersion !== original.apiVersion) return 'apiVersion';
  if (metadata.name !== original.metadata?.name) return 'metadata.name';
  const namespace = metadata.namespace ?? original.metadata?.namespace;
  if (namespace !== original.metadata?.namespace) return 'metadata.namespace';
  return null;
}

export type DiffKind = 'same' | 'added' | 'removed' | 'skipped';

export interface DiffLine {
  kind: DiffKind;
  text: string;
  /** For `skipped`: how many unchanged lines are folded away. */
  count: number;
}

export interface LineDiff {
  lines: DiffLine[];
  added: number;
  removed: number;
}

/**
 * The line diff of two texts, unchanged runs longer than `2 * context` folded to their first and
 * last `context` lines around a `skipped` marker.
 */
export function lineDiff(before: string, after: string, context = 3): LineDiff {
  const lines: DiffLine[] = [];
  let added = 0;
  let removed = 0;
  const parts = diffLines(before, after);
  parts.forEach((part, index) => {
    const texts = part.value.replace(/\n$/, '').split('\n');
    if (part.added || part.removed) {
      const kind: DiffKind = part.added ? 'added' : 'removed';
      if (part.added) added += texts.length;
      else removed += texts.length;
      lines.push(...texts.map((text) => ({ kind, text, count: 1 })));
      return;
    }
    const keepHead = index === 0 ? 0 : context;
    const keepTail = index === parts.length - 1 ? 0 : context;
    if (texts.length <= keepHead + keepTail + 1) {
      lines.push(...texts.map((text) => ({ kind: 'same' as const, text, count: 1 })));
      return;
    }
    lines.push(...texts.slice(0, keepHead).map((text) => ({ kind: 'same' as const, text, count: 1 })));
    lines.push({ kind: 'skipped', text: '', count: texts.length - keepHead - keepTail });
    lines.push(
      ...texts.slice(texts.length - keepTail).map((text) => ({ kind: 'same' as const, text, count: 1 })),
    );
  });
  return { lines, added, removed };
}

/** Where a document to create goes: its kind as discovery has it and the collection's API path. */
export interface CreateTarget {
  kind: ResourceKind;
  namespace: string;
  path: string;
  name: string;
}

/** A document that cannot be created, with the reason (shown next to it). */
export class DocumentError extends Error {}

/**
 * The collection a document is POSTed to: its `apiVersion` and `kind` looked up in the cluster's
 * discovery (`kinds`), or else in the resource list of its group version (a version discovery did
 * not prefer); the namespace is the document's, else `namespace` (the picker's), else `default`.
 */
export async function createTarget(
  document: Json,
  kinds: readonly ResourceKind[],
  namespace: string,
  readGroupVersion: (groupVersion: string) => Promise<ApiResourceList>,
): Promise<CreateTarget> {
  const apiVersion = typeof document.apiVersion === 'string' ? document.apiVersion : '';
  const kindName = typeof document.kind === 'string' ? document.kind : '';
  if (apiVersion === '' || kindName === '') {
    throw new DocumentError('apiVersion and kind are required');
  }
  const { group, version } = splitGroupVersion(apiVersion);
  const matches = (candidate: ResourceKind) =>
    candidate.group === group && candidate.version === version && candidate.kind === kindName;
  let kind = kinds.find(matches);
  if (!kind) {
    let listed: ResourceKind[] = [];
    try {
      listed = kindsOf(await readGroupVersion(apiVersion));
    } catch {
      listed = [];
    }
    kind = listed.find(matches);
  }
  if (!kind) {
    throw new DocumentError(`the cluster does not serve ${kindName} in ${apiVersion}`);
  }
  const metadata = isRecord(document.metadata) ? document.metadata : {};
  const name = typeof metadata.name === 'string' ? metadata.name : '';
  const ownNamespace = typeof metadata.namespace === 'string' ? metadata.namespace : '';
  const chosen = kind.namespaced ? ownNamespace || namespace || 'default' : '';
  const scope = kind.namespaced ? `/namespaces/${encodeURIComponent(chosen)}` : '';
  return {
    kind,
    namespace: chosen,
    name,
    path: `${groupVersionPath(group, version)}${scope}/${kind.resource}`,
  };
}

/** Reads a group version's resource list through the proxy (`/api/v1` or `/apis/{group}/{version}`). */
export function groupVersionReader(kube: KubeClient, cluster: string) {
  return (groupVersion: string): Promise<ApiResourceList> => {
    const { group, version } = splitGroupVersion(groupVersion);
    return kube.get<ApiResourceList>(cluster, groupVersionPath(group, version));
  };
}

/** A starting text for a new object of `kind` (a few kinds have a fuller template). */
export function templateFor(kind: ResourceKind, namespace: string): string {
  const apiVersion = kind.group === '' ? kind.version : `${kind.group}/${kind.version}`;
  const head = [`apiVersion: ${apiVersion}`, `kind: ${kind.kind}`, 'metadata:', '  name: example'];
  if (kind.namespaced) head.push(`  namespace: ${namespace || 'default'}`);
  const body: Record<string, string[]> = {
    ConfigMap: ['data:', '  key: value'],
    Secret: ['type: Opaque', 'stringData:', '  key: value'],
    Service: [
      'spec:',
      '  selector:',
      '    app: example',
      '  ports:',
      '    - port: 80',
      '      targetPort: 80',
    ],
    Deployment: [
      'spec:',
      '  replicas: 1',
      '  selector:',
      '    matchLabels:',
      '      app: example',
      '  template:',
      '    metadata:',
      '      labels:',
      '        app: example',
      '    spec:',
      '      containers:',
      '        - name: main',
      '          image: nginx',
    ],
  };
  const known = kind.group === '' || kind.group === 'apps' ? body[kind.kind] : undefined;
  return [...head, ...(known ?? [])].join('\n') + '\n';
}
