import type { KubeClient } from './kubeClient';

/** Lines the viewer keeps; older ones are dropped as new ones come (a log can be gigabytes). */
export const MAX_LINES = 20_000;
/** Characters of a line shown; the rest is cut off on screen (the download keeps the whole line). */
export const MAX_LINE_CHARS = 2_000;
/** Waits before a broken follow is opened again; the last one repeats. */
export const LOG_RECONNECT_DELAYS_MS: readonly number[] = [100, 250, 500, 1000, 2000];

/** One line of a log: the kubelet's timestamp (asked for always) and the text. */
export interface LogLine {
  /** Counts up from 1 across the viewer's life, so rows keep their identity when old ones go. */
  seq: number;
  time: string;
  text: string;
}

/** Splits `2026-12-07T03:04:05.123456789Z text` into its time and text; a line without one keeps ''. */
export function parseLogLine(raw: string): { time: string; text: string } {
  const space = raw.indexOf(' ');
  const candidate = space < 0 ? raw : raw.slice(0, space);
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(candidate)) {
    return { time: candidate, text: space < 0 ? '' : raw.slice(space + 1) };
  }
  return { time: '', text: raw };
}

/** The text shown for a line: cut at `max` characters, saying how many more there are. */
export function displayText(text: string, max = MAX_LINE_CHARS): { text: string; cut: number } {
  return text.length <= max ? { text, cut: 0 } : { text: text.slice(0, max), cut: text.length - max };
}

/** Compares two kubelet timestamps (RFC 3339 in UTC with up to nine fractional digits). */
export function compareTimes(a: string, b: string): number {
  const split = (time: string) => {
    const match = /^(.*?:\d{2})(?:\.(\d+))?Z$/.exec(time);
    return match
      ? { seconds: match[1] ?? '', fraction: (match[2] ?? '').padEnd(9, '0') }
      : { seconds: time, fraction: '' };
  };
  const left = split(a);
  const right = split(b);
  if (left.seconds !== right.seconds) return left.seconds < right.seconds ? -1 : 1;
  if (left.fraction === right.fraction) return 0;
  return left.fraction < right.fraction ? -1 : 1;
}

/**
 * Where a resumed stream (`sinceTime` = the last time shown) picks up: the server sends again every
 * line written at that time, so the first `shownAtLast` of those are dropped, and any line before it.
 */
export class ResumePoint {
  private lastTime = '';
  private atLast = 0;

  /** Records a line that was shown. */
  shown(time: string): void {
    if (time === '') return;
    if (time === this.lastTime) {
      this.atLast += 1;
    } else {
      this.lastTime = time;
      this.atLast = 1;
    }
  }

  get sinceTime(): string {
    return this.lastTime;
  }

  /** For a new stream from `sinceTime`: a filter that says which of its lines are new. */
  resumeFilter(): (time: string) => boolean {
    const last = this.lastTime;
    let skip = this.atLast;
    return (time: string) => {
      if (last === '' || time === '') return true;
      const order = compareTimes(time, last);
      if (order < 0) return false;
      if (order === 0 && skip > 0) {
        skip -= 1;
        return false;
      }
      return true;
    };
  }
}

/** A bounded buffer of log lines: the newest `max` are kept. */
export class LogBuffer {
  lines: LogLine[] = [];
  dropped = 0;
  private next = 1;

  constructor(private readonly max = MAX_LINES) {}

  push(time: string, text: string): void {
    this.lines.push({ seq: this.next, time, text });
    this.next += 1;
    if (this.lines.length > this.max) {
      const excess = this.lines.length - this.max;
      this.lines.splice(0, excess);
      this.dropped += excess;
    }
  }

  clear(): void {
    this.lines = [];
    this.dropped = 0;
  }
}

/** The lines of a text stream as they arrive (the last one even without a final newline). */
export async function* streamLines(
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  const abort = () => void reader.cancel().catch(() => undefined);
  signal?.addEventListener('abort', abort);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffered += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        yield buffered.slice(0, newline).replace(/\r$/, '');
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
      }
      if (done) {
        if (buffered !== '') yield buffered;
        return;
      }
    }
  } finally {
    signal?.removeEventListener('abort', abort);
    reader.releaseLock();
  }
}

export interface LogOptions {
  container: string;
  follow: boolean;
  /** Last lines to start with; none when undefined. */
  tailLines?: number;
  previous: boolean;
  /** Resume from this time (RFC 3339). */
  sinceTime?: string;
}

/** The path and query of a pod's log; timestamps are always asked for (resuming needs them). */
export function logRequest(namespace: string, pod: string, options: LogOptions) {
  return {
    path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log`,
    query: {
      container: options.container,
      follow: options.follow ? 'true' : undefined,
      previous: options.previous ? 'true' : undefined,
      timestamps: 'true',
      // A resumed stream starts at the last time seen, whatever the tail asked first.
      tailLines: options.sinceTime ? undefined : options.tailLines,
      sinceTime: options.sinceTime,
    },
  };
}

export interface FollowHandlers {
  line: (time: string, text: string) => void;
  /** A stream is open (true) or broken and being opened again (false). */
  live: (open: boolean) => void;
  /** A stream ended or failed; `reconnecting` says whether the viewer opens it again. */
  ended?: (error: unknown, reconnecting: boolean) => void;
  sleep?: (milliseconds: number) => Promise<void>;
}

const realSleep = (milliseconds: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, milliseconds);
  });

/**
 * Reads a pod's log. Without `follow`, once. With it, a stream that ends or breaks (the replica
 * serving it died, the apiserver ended it) is opened again from the last timestamp seen
 * (`sinceTime`), dropping the lines at or before it that were already shown, so that no line is lost
 * or shown twice; until `signal` aborts. A refusal (4xx) is not retried.
 */
export async function readLog(
  kube: KubeClient,
  cluster: string,
  namespace: string,
  pod: string,
  options: LogOptions,
  handlers: FollowHandlers,
  signal: AbortSignal,
): Promise<void> {
  const resume = new ResumePoint();
  const sleep = handlers.sleep ?? realSleep;
  let attempt = 0;
  let first = true;
  while (!signal.aborted) {
    const request = logRequest(namespace, pod, {
      ...options,
      sinceTime: first ? options.sinceTime : resume.sinceTime || undefined,
    });
    const isNew = first ? () => true : resume.resumeFilter();
    first = false;
    let progressed = false;
    try {
      const response = await kube.open(cluster, request.path, {
        query: request.query,
        accept: 'text/plain',
        signal,
      });
      if (response.body === null) throw new Error('the log answer has no body');
      handlers.live(true);
      for await (const raw of streamLines(response.body, signal)) {
        if (signal.aborted) return;
        const { time, text } = parseLogLine(raw);
        if (!isNew(time)) continue;
        resume.shown(time);
        progressed = true;
        handlers.line(time, text);
      }
      if (signal.aborted) return;
      handlers.live(false);
      if (!options.follow) return;
      handlers.ended?.(null, true);
    } catch (failure) {
      handlers.live(false);
      if (signal.aborted) return;
      const status = (failure as { status?: unknown }).status;
      const refused = typeof status === 'number' && status >= 400 && status < 500;
      handlers.ended?.(failure, options.follow && !refused);
      if (!options.follow || refused) throw failure;
    }
    attempt = progressed ? 0 : attempt + 1;
    await sleep(LOG_RECONNECT_DELAYS_MS[Math.min(attempt, LOG_RECONNECT_DELAYS_MS.length - 1)] ?? 0);
  }
}

/** The lines as a file's text (the whole lines, with their times when `timestamps`). */
export function downloadText(lines: readonly LogLine[], timestamps: boolean): string {
  return (
    lines
      .map((line) => (timestamps && line.time !== '' ? `${line.time} ${line.text}` : line.text))
      .join('\n') + '\n'
  );
}

/** The lines whose text contains `search` (any case); all when it is empty. */
export function matching(lines: readonly LogLine[], search: string): LogLine[] {
  const wanted = search.trim().toLowerCase();
  if (wanted === '') return [...lines];
  return lines.filter((line) => line.text.toLowerCase().includes(wanted));
}
