/**
 * Formats a time in the user's language: an RFC 3339 string, a `Date`, or a number of microseconds
 * since the epoch (the audit log's unit).
 */
export function formatTime(value: string | number | Date | null | undefined, language: string): string {
  if (value === null || value === undefined || value === '') {
    return '—';
  }
  const date =
    value instanceof Date ? value : typeof value === 'number' ? new Date(value / 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) {
    return String(value);
  }
  return new Intl.DateTimeFormat(language, { dateStyle: 'medium', timeStyle: 'medium' }).format(date);
}
