/** A column of a Kubernetes `Table` (the apiserver's printer columns). */
export interface TableColumn {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

/** One row as the console shows it. */
export interface TableRow {
  /** `namespace/name`, unique within a list. */
  key: string;
  name: string;
  namespace: string;
  uid: string;
  createdAt: string | null;
  labels: Record<string, string>;
  /** Cell values by column name. */
  cells: Record<string, unknown>;
}

export interface MappedTable {
  columns: TableColumn[];
  /** Every column of the answer, the wide ones included (watch events are mapped by them). */
  allColumns: TableColumn[];
  rows: TableRow[];
  resourceVersion: string;
  continueToken: string;
}

interface Metadata {
  name?: string;
  namespace?: string;
  uid?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  resourceVersion?: string;
  continue?: string;
}

interface TableShape {
  kind?: string;
  metadata?: Metadata;
  columnDefinitions?: Partial<TableColumn>[];
  rows?: { cells?: unknown[]; object?: { metadata?: Metadata } }[];
  items?: { metadata?: Metadata }[];
}

function rowFromMetadata(metadata: Metadata | undefined, cells: Record<string, unknown>): TableRow {
  const name = metadata?.name ?? '';
  const namespace = metadata?.namespace ?? '';
  return {
    key: namespace === '' ? name : `${namespace}/${name}`,
    name,
    namespace,
    uid: metadata?.uid ?? '',
    createdAt: metadata?.creationTimestamp ?? null,
    labels: metadata?.labels ?? {},
    cells,
  };
}

/**
 * Maps a list answer to columns and rows. A `Table` gives the server's printer columns (those of
 * priority 0 unless `wide`); anything else (a server that ignored the `Table` request, a plain
 * `List`) gets a Name and a Created column from each item's metadata.
 */
export function mapTable(
  body: unknown,
  options: { wide?: boolean; columns?: TableColumn[] } = {},
): MappedTable {
  const shape = (typeof body === 'object' && body !== null ? body : {}) as TableShape;
  const resourceVersion = shape.metadata?.resourceVersion ?? '';
  const continueToken = shape.metadata?.continue ?? '';
  if (shape.kind === 'Table') {
    // The Tables of watch events may leave the column definitions out: the list's apply.
    const definitions =
      Array.isArray(shape.columnDefinitions) && shape.columnDefinitions.length > 0
        ? shape.columnDefinitions
        : (options.columns ?? []);
    const all = definitions.map((column) => ({
      name: column.name ?? '',
      type: column.type ?? 'string',
      format: column.format ?? '',
      description: column.description ?? '',
      priority: column.priority ?? 0,
    }));
    const shown = all
      .map((column, index) => ({ column, index }))
      .filter(({ column }) => options.wide === true || column.priority === 0);
    const rows = (shape.rows ?? []).map((row) => {
      const cells: Record<string, unknown> = {};
      for (const { column, index } of shown) {
        cells[column.name] = row.cells?.[index] ?? null;
      }
      return rowFromMetadata(row.object?.metadata, cells);
    });
    return {
      columns: shown.map(({ column }) => column),
      allColumns: all,
      rows,
      resourceVersion,
      continueToken,
    };
  }
  const columns: TableColumn[] = [
    { name: 'Name', type: 'string', format: 'name', description: '', priority: 0 },
    { name: 'Created', type: 'date', format: '', description: '', priority: 0 },
  ];
  const rows = (shape.items ?? []).map((item) =>
    rowFromMetadata(item.metadata, {
      Name: item.metadata?.name ?? '',
      Created: item.metadata?.creationTimestamp ?? '',
    }),
  );
  return { columns, allColumns: columns, rows, resourceVersion, continueToken };
}

/** kubectl's short ages (`45s`, `12m`, `3h`, `5d`) in seconds, or null for anything else. */
export function ageSeconds(value: string): number | null {
  const match = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(value.trim());
  if (match === null || value.trim() === '') {
    return null;
  }
  const [, days, hours, minutes, seconds] = match.map((part) => Number(part ?? 0));
  return (days ?? 0) * 86400 + (hours ?? 0) * 3600 + (minutes ?? 0) * 60 + (seconds ?? 0);
}

/**
 * Orders two cells of one column: numbers as numbers, ages (`5m` < `2h`) by length of time,
 * anything else as text in natural order (`pod-2` < `pod-10`). Empty cells go last.
 */
export function compareCells(a: unknown, b: unknown, column: Pick<TableColumn, 'type'>): number {
  const empty = (value: unknown) => value === null || value === undefined || value === '';
  if (empty(a) || empty(b)) {
    return (empty(a) ? 1 : 0) - (empty(b) ? 1 : 0);
  }
  if (column.type === 'integer' || column.type === 'number') {
    const left = Number(a);
    const right = Number(b);
    if (Number.isFinite(left) && Number.isFinite(right)) {
      return left - right;
    }
  }
  const leftAge = ageSeconds(String(a));
  const rightAge = ageSeconds(String(b));
  if (leftAge !== null && rightAge !== null) {
    return leftAge - rightAge;
  }
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

/** The rows whose name holds `text` (case-insensitive); all rows for an empty filter. */
export function filterByName(rows: TableRow[], text: string): TableRow[] {
  const needle = text.trim().toLowerCase();
  return needle === '' ? rows : rows.filter((row) => row.name.toLowerCase().includes(needle));
}
