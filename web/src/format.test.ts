import { describe, expect, it } from 'vitest';
import { formatTime } from './format';

describe('formatTime', () => {
  const instant = Date.UTC(2026, 11, 6, 21, 30, 0);
  it('reads RFC 3339, Date and audit microseconds as the same instant', () => {
    const expected = formatTime(new Date(instant), 'en');
    expect(formatTime(new Date(instant).toISOString(), 'en')).toBe(expected);
    expect(formatTime(instant * 1000, 'en')).toBe(expected);
    expect(expected).toContain('2026');
  });
  it('formats in the language asked for', () => {
    expect(formatTime(new Date(instant), 'zh-CN')).toContain('2026年');
    expect(formatTime(new Date(instant), 'en')).not.toContain('年');
  });
  it('shows a dash for no time and the raw value for a bad one', () => {
    expect(formatTime(null, 'en')).toBe('—');
    expect(formatTime('not a time', 'en')).toBe('not a time');
  });
});
