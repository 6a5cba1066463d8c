/**
 * The exec websocket of a pod through the proxy: Kubernetes' channel protocol. Every binary frame
 * starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the final `Status` (JSON), 4 a terminal
 * resize (JSON `{Width, Height}`); `v5.channel.k8s.io` adds 255, "close this channel".
 */

/** Offered in this order; the apiserver picks the first it speaks. */
export const EXEC_PROTOCOLS: readonly string[] = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];

export const CHANNEL_STDIN = 0;
export const CHANNEL_STDOUT = 1;
export const CHANNEL_STDERR = 2;
export const CHANNEL_STATUS = 3;
export const CHANNEL_RESIZE = 4;
export const CHANNEL_CLOSE = 255;

/** The shells tried in order: bash where the image has it, else sh. */
export const SHELLS: readonly string[] = ['bash', 'sh'];

/** The websocket URL of an interactive exec of `command` in a pod's container. */
export function execUrl(
  origin: string,
  cluster: string,
  namespace: string,
  pod: string,
  container: string,
  command: readonly string[],
): string {
  const url = new URL(
    `/k8s-api/${encodeURIComponent(cluster)}/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/exec`,
    origin,
  );
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('container', container);
  for (const part of command) url.searchParams.append('command', part);
  for (const flag of ['stdin', 'stdout', 'stderr', 'tty']) url.searchParams.set(flag, 'true');
  return url.toString();
}

const encoder = new TextEncoder();

function frame(channel: number, payload: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(payload.length + 1);
  bytes[0] = channel;
  bytes.set(payload, 1);
  return bytes;
}

/** What the user typed (or pasted), for stdin. */
export function stdinFrame(data: string | Uint8Array): Uint8Array {
  return frame(CHANNEL_STDIN, typeof data === 'string' ? encoder.encode(data) : data);
}

/** The terminal's new size. */
export function resizeFrame(columns: number, rows: number): Uint8Array {
  return frame(CHANNEL_RESIZE, encoder.encode(JSON.stringify({ Width: columns, Height: rows })));
}

/** `v5.channel.k8s.io` only: stdin is done. */
export function closeStdinFrame(): Uint8Array {
  return new Uint8Array([CHANNEL_CLOSE, CHANNEL_STDIN]);
}

export interface Frame {
  channel: number;
  payload: Uint8Array;
}

export function decodeFrame(data: ArrayBuffer | Uint8Array): Frame | null {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length === 0) return null;
  return { channel: bytes[0] ?? 0, payload: bytes.subarray(1) };
}

export interface ExecStatus {
  success: boolean;
  message: string;
  /** The command's exit code when it ran and failed (`NonZeroExitCode`). */
  exitCode: number | null;
}

/** The `Status` of channel 3: success, or why the command failed or did not start. */
export function parseStatus(payload: Uint8Array): ExecStatus {
  try {
    const status = JSON.parse(new TextDecoder().decode(payload)) as {
      status?: unknown;
      message?: unknown;
      reason?: unknown;
      details?: { causes?: { reason?: unknown; message?: unknown }[] };
    };
    const exit = status.details?.causes?.find((cause) => cause.reason === 'ExitCode')?.message;
    return {
      success: status.status === 'Success',
      message: typeof status.message === 'string' ? status.message : '',
      exitCode: typeof exit === 'string' && /^\d+$/.test(exit) ? Number(exit) : null,
    };
  } catch {
    return { success: false, message: 'the exec status is not JSON', exitCode: null };
  }
}

/**
 * Whether a session that failed this way means the shell is not in the image (then the next shell
 * is tried): the container runtime's "executable file not found", before any output.
 */
export function shellMissing(status: ExecStatus, hadOutput: boolean): boolean {
  return (
    !hadOutput &&
    !status.success &&
    status.exitCode === null &&
    /executable file not found|no such file or directory|not found in \$PATH/i.test(status.message)
  );
}
