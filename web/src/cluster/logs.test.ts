import { describe, expect, it, vi } from 'vitest';
import { createKubeClient } from './kubeClient';
import {
  compareTimes,
  displayText,
  downloadText,
  LogBuffer,
  logRequest,
  matching,
  parseLogLine,
  readLog,
  ResumePoint,
  streamLines,
} from './logs';

const time = (n: number) => `2026-12-07T03:00:00.${String(n).padStart(9, '0')}Z`;
const line = (n: number) => `${time(n)} app/main line ${n}`;

/** A body that sends `chunks` and then ends, or fails with `error` after them. */
function body(chunks: (string | Uint8Array)[], error?: Error): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let index = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[index];
      index += 1;
      if (chunk !== undefined) {
        controller.enqueue(typeof chunk === 'string' ? encoder.encode(chunk) : chunk);
      } else if (error) {
        controller.error(error);
      } else {
        controller.close();
      }
    },
  });
}

async function collect(stream: AsyncGenerator<string>): Promise<string[]> {
  const lines: string[] = [];
  for await (const item of stream) lines.push(item);
  return lines;
}

describe('log lines', () => {
  it("splits the kubelet's timestamp from the text", () => {
    expect(parseLogLine('2026-12-07T03:04:05.123456789Z hello world')).toEqual({
      time: '2026-12-07T03:04:05.123456789Z',
      text: 'hello world',
    });
    expect(parseLogLine('2026-12-07T03:04:05+08:00 x')).toEqual({
      time: '2026-12-07T03:04:05+08:00',
      text: 'x',
    });
    expect(parseLogLine('2026-12-07T03:04:05Z')).toEqual({ time: '2026-12-07T03:04:05Z', text: '' });
    expect(parseLogLine('no time here')).toEqual({ time: '', text: 'no time here' });
  });

  it('cuts a very long line for display and says how much is left', () => {
    expect(displayText('short', 10)).toEqual({ text: 'short', cut: 0 });
    expect(displayText('x'.repeat(1_000_000), 2000)).toEqual({ text: 'x'.repeat(2000), cut: 998_000 });
  });

  it('orders timestamps with any number of fractional digits', () => {
    expect(compareTimes('2026-12-07T03:00:00.5Z', '2026-12-07T03:00:00.400000000Z')).toBe(1);
    expect(compareTimes('2026-12-07T03:00:00Z', '2026-12-07T03:00:00.000000001Z')).toBe(-1);
    expect(compareTimes('2026-12-07T03:00:00.100Z', '2026-12-07T03:00:00.1Z')).toBe(0);
    expect(compareTimes('2026-12-07T02:59:59.9Z', '2026-12-07T03:00:00Z')).toBe(-1);
  });

  it('keeps the newest lines only, numbering them for their whole life', () => {
    const buffer = new LogBuffer(3);
    for (let n = 1; n <= 5; n += 1) buffer.push(time(n), `line ${n}`);
    expect(buffer.lines.map((entry) => [entry.seq, entry.text])).toEqual([
      [3, 'line 3'],
      [4, 'line 4'],
      [5, 'line 5'],
    ]);
    expect(buffer.dropped).toBe(2);
    buffer.clear();
    buffer.push('', 'again');
    expect(buffer.lines).toEqual([{ seq: 6, time: '', text: 'again' }]);
  });

  it('searches and downloads whole lines', () => {
    const buffer = new LogBuffer();
    buffer.push(time(1), 'GET /health 200');
    buffer.push(time(2), 'POST /login 500 Error');
    buffer.push('', 'x'.repeat(5000));
    expect(matching(buffer.lines, 'error').map((entry) => entry.text)).toEqual(['POST /login 500 Error']);
    expect(matching(buffer.lines, '  ')).toHaveLength(3);
    expect(downloadText(buffer.lines, true)).toBe(
      `${time(1)} GET /health 200\n${time(2)} POST /login 500 Error\n${'x'.repeat(5000)}\n`,
    );
    expect(downloadText(buffer.lines.slice(0, 1), false)).toBe('GET /health 200\n');
  });

  it('reads lines across chunks, a character split between two chunks included', async () => {
    const bytes = new TextEncoder().encode('名字\n');
    const lines = await collect(
      streamLines(body(['one\ntw', 'o\r\n', bytes.slice(0, 2), bytes.slice(2), 'last without newline'])),
    );
    expect(lines).toEqual(['one', 'two', '名字', 'last without newline']);
  });

  it('asks for timestamps always, the tail only on the first stream', () => {
    expect(
      logRequest('a', 'web-1', { container: 'main', follow: true, previous: false, tailLines: 100 }),
    ).toEqual({
      path: '/api/v1/namespaces/a/pods/web-1/log',
      query: {
        container: 'main',
        follow: 'true',
        previous: undefined,
        timestamps: 'true',
        tailLines: 100,
        sinceTime: undefined,
      },
    });
    const resumed = logRequest('a', 'web-1', {
      container: 'main',
      follow: true,
      previous: true,
      tailLines: 100,
      sinceTime: time(3),
    });
    expect(resumed.query).toMatchObject({ previous: 'true', tailLines: undefined, sinceTime: time(3) });
  });
});

describe('resuming a followed log', () => {
  it('drops the lines of the resumed stream that were shown already, at the same time too', () => {
    const point = new ResumePoint();
    point.shown(time(1));
    point.shown(time(2));
    point.shown(time(2));
    expect(point.sinceTime).toBe(time(2));
    const isNew = point.resumeFilter();
    expect([time(1), time(2), time(2), time(2), time(3)].map(isNew)).toEqual([
      false,
      false,
      false,
      true,
      true,
    ]);
  });

  it('opens a broken stream again from the last time seen: every line once, none lost', async () => {
    const requests: URLSearchParams[] = [];
    const streams = [
      // The first stream breaks after line 3 (the replica serving it died).
      () => body([`${line(1)}\n${line(2)}\n`, `${line(3)}\n`], new TypeError('network error')),
      // The apiserver sends again from sinceTime, line 3 included, then ends.
      () => body([`${line(3)}\n${line(4)}\n`, `${line(5)}\n`]),
      () => body([`${line(5)}\n${line(6)}\n`]),
    ];
    const fetch = vi.fn(async (request: Request) => {
      requests.push(new URL(request.url).searchParams);
      const next = streams.shift();
      return next ? new Response(next(), { status: 200 }) : new Response(body([]), { status: 200 });
    });
    const kube = createKubeClient({
      baseUrl: 'http://console.test',
      fetch,
      sleep: async () => undefined,
      readRetryDelaysMs: [],
    });
    const controller = new AbortController();
    const shown: string[] = [];
    const ended: boolean[] = [];
    await readLog(
      kube,
      'dev',
      'a',
      'app',
      { container: 'main', follow: true, previous: false, tailLines: 10 },
      {
        line: (_time, text) => {
          shown.push(text);
          if (shown.length === 6) controller.abort();
        },
        live: () => undefined,
        ended: (_error, reconnecting) => ended.push(reconnecting),
        sleep: async () => undefined,
      },
      controller.signal,
    );
    expect(shown).toEqual([1, 2, 3, 4, 5, 6].map((n) => `app/main line ${n}`));
    expect(
      requests.map((query) => [query.get('tailLines'), query.get('sinceTime'), query.get('timestamps')]),
    ).toEqual([
      ['10', null, 'true'],
      [null, time(3), 'true'],
      [null, time(5), 'true'],
    ]);
    expect(ended).toEqual([true, true]);
  });

  it('does not retry a refusal, and reads a log without follow once', async () => {
    const forbidden = vi.fn(
      async () =>
        new Response(
          JSON.stringify({
            kind: 'Status',
            reason: 'BadRequest',
            code: 400,
            message: 'previous terminated container "main" in pod "app" not found',
          }),
          {
            status: 400,
          },
        ),
    );
    const refusing = createKubeClient({
      baseUrl: 'http://console.test',
      fetch: forbidden,
      sleep: async () => undefined,
      readRetryDelaysMs: [],
    });
    await expect(
      readLog(
        refusing,
        'dev',
        'a',
        'app',
        { container: 'main', follow: true, previous: true },
        { line: () => undefined, live: () => undefined, sleep: async () => undefined },
        new AbortController().signal,
      ),
    ).rejects.toMatchObject({
      status: 400,
      message: expect.stringContaining('previous terminated container'),
    });
    expect(forbidden).toHaveBeenCalledTimes(1);

    const once = vi.fn(async () => new Response(body([`${line(1)}\n${line(2)}\n`]), { status: 200 }));
    const reading = createKubeClient({
      baseUrl: 'http://console.test',
      fetch: once,
      sleep: async () => undefined,
      readRetryDelaysMs: [],
    });
    const shown: string[] = [];
    await readLog(
      reading,
      'dev',
      'a',
      'app',
      { container: 'main', follow: false, previous: false },
      { line: (_time, text) => shown.push(text), live: () => undefined, sleep: async () => undefined },
      new AbortController().signal,
    );
    expect(shown).toEqual(['app/main line 1', 'app/main line 2']);
    expect(once).toHaveBeenCalledTimes(1);
  });
});
