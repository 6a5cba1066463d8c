import type { TableColumn, TableRow } from './table';
import { mapTable } from './table';

/** One event of a Kubernetes watch stream. */
export interface WatchEvent {
  type: string;
  object: unknown;
}

/**
 * The events of a watch response body (one JSON object a line). A line that is not an event ends
 * the stream with an error: the connection is then opened again from the last version seen.
 */
export async function* watchEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<WatchEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffered += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line !== '') yield parseEvent(line);
        newline = buffered.indexOf('\n');
      }
      if (done) {
        if (buffered.trim() !== '') yield parseEvent(buffered.trim());
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function parseEvent(line: string): WatchEvent {
  const parsed: unknown = JSON.parse(line);
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    typeof (parsed as { type?: unknown }).type !== 'string'
  ) {
    throw new Error('not a watch event');
  }
  return parsed as WatchEvent;
}

function versionOf(object: unknown): string {
  const metadata = (object as { metadata?: { resourceVersion?: unknown } } | null)?.metadata;
  return typeof metadata?.resourceVersion === 'string' ? metadata.resourceVersion : '';
}

/** The `Status` of an `ERROR` event: its HTTP code (410 when the version is too old). */
export function errorCode(event: WatchEvent): number {
  const code = (event.object as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : 0;
}

export interface Applied {
  rows: TableRow[];
  /** The version to resume from after this event ('' when the event carries none). */
  resourceVersion: string;
}

/**
 * Applies one ADDED, MODIFIED, DELETED or BOOKMARK event (its object a one-row `Table`, or a
 * plain object) to the rows. An ADDED object is new since the list and is added at the end; a
 * MODIFIED one not among the rows is added only once every page is read (before that, a later page
 * holds it).
 */
export function applyEvent(
  rows: TableRow[],
  event: WatchEvent,
  columns: TableColumn[],
  complete: boolean,
): Applied {
  const resourceVersion = versionOf(event.object) || versionOfRow(event.object);
  if (event.type === 'BOOKMARK') {
    return { rows, resourceVersion };
  }
  const table = mapTable(asTable(event.object), { columns, wide: true });
  let next = rows;
  for (const row of table.rows) {
    const index = next.findIndex((candidate) => candidate.key === row.key);
    if (event.type === 'DELETED') {
      if (index >= 0) next = [...next.slice(0, index), ...next.slice(index + 1)];
    } else if (index >= 0) {
      next = [...next.slice(0, index), row, ...next.slice(index + 1)];
    } else if (complete || event.type === 'ADDED') {
      next = [...next, row];
    }
  }
  return { rows: next, resourceVersion };
}

/** The version of the object in a one-row `Table` (`rows[0].object.metadata.resourceVersion`). */
function versionOfRow(object: unknown): string {
  const rows = (object as { rows?: { object?: unknown }[] } | null)?.rows;
  return rows && rows.length > 0 ? versionOf(rows[0]?.object) : '';
}

/** A plain object (a server that ignored the `Table` request) as a list of one. */
function asTable(object: unknown): unknown {
  if ((object as { kind?: unknown } | null)?.kind === 'Table') return object;
  return { kind: 'List', items: [object] };
}
