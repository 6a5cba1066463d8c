/**
 * JSON-like values as YAML for reading (objects from the Kubernetes API). Strings that YAML would
 * read as something else (numbers, booleans, null, text with `: ` or ` #`, leading or trailing
 * spaces, several lines) are written double-quoted, in JSON's escaping, which YAML reads back.
 */
const PLAIN = /^[A-Za-z_/.][\w ./:@,+()=~-]*$/;
const RESERVED = /^(?:true|false|yes|no|on|off|null|y|n|~)$/i;
/** Plain text YAML reads as a number: `.5`, `.inf`, `.nan`. */
const DOT_NUMBER = /^\.(?:\d|inf$|nan$)/i;

function scalar(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  const text = String(value);
  const plain =
    PLAIN.test(text) &&
    !RESERVED.test(text) &&
    !DOT_NUMBER.test(text) &&
    !text.includes(': ') &&
    !text.includes(' #') &&
    !text.endsWith(' ');
  return plain ? text : JSON.stringify(text);
}

function key(name: string): string {
  return scalar(name);
}

function isContainer(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

function isEmpty(value: object): boolean {
  return Array.isArray(value) ? value.length === 0 : Object.keys(value).length === 0;
}

function lines(value: unknown, indent: string): string[] {
  if (Array.isArray(value)) {
    return value.flatMap((item) => {
      if (isContainer(item) && !isEmpty(item)) {
        const [first = '', ...rest] = lines(item, `${indent}  `);
        return [`${indent}- ${first.trimStart()}`, ...rest];
      }
      return [`${indent}- ${isContainer(item) ? (Array.isArray(item) ? '[]' : '{}') : scalar(item)}`];
    });
  }
  if (isContainer(value)) {
    return Object.entries(value as Record<string, unknown>).flatMap(([name, item]) => {
      if (isContainer(item) && !isEmpty(item)) {
        return [`${indent}${key(name)}:`, ...lines(item, Array.isArray(item) ? indent : `${indent}  `)];
      }
      const text = isContainer(item) ? (Array.isArray(item) ? '[]' : '{}') : scalar(item);
      return [`${indent}${key(name)}: ${text}`];
    });
  }
  return [`${indent}${scalar(value)}`];
}

export function toYaml(value: unknown): string {
  if (isContainer(value) && isEmpty(value)) return Array.isArray(value) ? '[]\n' : '{}\n';
  return `${lines(value, '').join('\n')}\n`;
}

export const HIDDEN = '••••••';
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * A Secret with its values replaced by `HIDDEN` (`data`, `stringData`, and the last-applied
 * annotation, which holds them again); other objects unchanged.
 */
export function hideSecretValues<T>(object: T): T {
  if (!isContainer(object) || (object as { kind?: unknown }).kind !== 'Secret') return object;
  // A JSON copy: the object may be a reactive proxy, which structuredClone refuses.
  const copy = JSON.parse(JSON.stringify(object)) as Record<string, unknown>;
  for (const field of ['data', 'stringData']) {
    const values = copy[field];
    if (isContainer(values)) {
      copy[field] = Object.fromEntries(Object.keys(values).map((name) => [name, HIDDEN]));
    }
  }
  const annotations = (copy.metadata as { annotations?: Record<string, string> } | undefined)?.annotations;
  if (annotations && LAST_APPLIED in annotations) {
    annotations[LAST_APPLIED] = HIDDEN;
  }
  return copy as T;
}
