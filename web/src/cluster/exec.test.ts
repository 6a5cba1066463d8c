import { describe, expect, it } from 'vitest';
import {
  closeStdinFrame,
  decodeFrame,
  EXEC_PROTOCOLS,
  execUrl,
  parseStatus,
  resizeFrame,
  shellMissing,
  SHELLS,
  stdinFrame,
} from './exec';
import { defaultContainer, podContainers } from './pods';

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const status = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

describe('the exec channel protocol', () => {
  it('opens an interactive exec through the proxy, v5 offered before v4, bash before sh', () => {
    const url = new URL(execUrl('https://kuboard.example', 'prod', 'team a', 'web-1', 'main', ['bash']));
    expect(url.protocol).toBe('wss:');
    expect(url.pathname).toBe('/k8s-api/prod/api/v1/namespaces/team%20a/pods/web-1/exec');
    expect([...url.searchParams]).toEqual([
      ['container', 'main'],
      ['command', 'bash'],
      ['stdin', 'true'],
      ['stdout', 'true'],
      ['stderr', 'true'],
      ['tty', 'true'],
    ]);
    expect(new URL(execUrl('http://127.0.0.1:8080', 'c', 'n', 'p', 'x', ['sh', '-i'])).protocol).toBe('ws:');
    expect(
      new URL(execUrl('http://h', 'c', 'n', 'p', 'x', ['sh', '-i'])).searchParams.getAll('command'),
    ).toEqual(['sh', '-i']);
    expect(EXEC_PROTOCOLS).toEqual(['v5.channel.k8s.io', 'v4.channel.k8s.io']);
    expect(SHELLS).toEqual(['bash', 'sh']);
  });

  it('frames stdin, a resize and the end of stdin, and reads output frames', () => {
    const typed = stdinFrame('ls -l\r名');
    expect(typed[0]).toBe(0);
    expect(text(typed.subarray(1))).toBe('ls -l\r名');
    const resize = resizeFrame(120, 40);
    expect(resize[0]).toBe(4);
    expect(JSON.parse(text(resize.subarray(1)))).toEqual({ Width: 120, Height: 40 });
    expect([...closeStdinFrame()]).toEqual([255, 0]);
    const output = decodeFrame(new Uint8Array([1, 104, 105]).buffer);
    expect(output?.channel).toBe(1);
    expect(text(output?.payload ?? new Uint8Array())).toBe('hi');
    expect(decodeFrame(new Uint8Array([]))).toBeNull();
  });

  it('reads the final Status: success, an exit code, or why the command did not start', () => {
    expect(parseStatus(status({ kind: 'Status', status: 'Success', metadata: {} }))).toEqual({
      success: true,
      message: '',
      exitCode: null,
    });
    const exited = parseStatus(
      status({
        status: 'Failure',
        reason: 'NonZeroExitCode',
        message: 'command terminated with non-zero exit code: error executing command [sh], exit code 3',
        details: { causes: [{ reason: 'ExitCode', message: '3' }] },
      }),
    );
    expect(exited.exitCode).toBe(3);
    expect(shellMissing(exited, false)).toBe(false);
    const missing = parseStatus(
      status({
        status: 'Failure',
        reason: 'InternalError',
        message:
          'Internal error occurred: error executing command in container: failed to exec in container: OCI runtime exec failed: exec failed: unable to start container process: exec: "bash": executable file not found in $PATH: unknown',
      }),
    );
    expect(shellMissing(missing, false)).toBe(true);
    expect(shellMissing(missing, true)).toBe(false);
    expect(parseStatus(new TextEncoder().encode('not json')).success).toBe(false);
  });

  it("picks a pod's default container as kubectl does", () => {
    const pod = {
      metadata: { annotations: { 'kubectl.kubernetes.io/default-container': 'app' } },
      spec: { containers: [{ name: 'sidecar' }, { name: 'app' }], initContainers: [{ name: 'init' }] },
    };
    expect(podContainers(pod)).toEqual(['sidecar', 'app', 'init']);
    expect(defaultContainer(pod)).toBe('app');
    expect(defaultContainer({ spec: { containers: [{ name: 'only' }] } })).toBe('only');
    expect(defaultContainer(null)).toBe('');
  });
});
