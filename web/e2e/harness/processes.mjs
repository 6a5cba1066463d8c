// Child processes of the harness: each is started here, logged to a file, waited on with a
// deadline, and ended by its own pid (never by name).

import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { createServer } from 'node:net';

/** A free TCP port on loopback (bound, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts `command` with its output appended to `logPath`. */
export function startProcess(command, args, { env = {}, logPath, uid, gid, cwd } = {}) {
  const log = openSync(logPath, 'a');
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', log, log],
    uid,
    gid,
    cwd,
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.on('error', () => {});
  return { child, pid: child.pid, exited, logPath };
}

/** Whether the process has exited. */
export function hasExited(processHandle) {
  return processHandle.child.exitCode !== null || processHandle.child.signalCode !== null;
}

/** Sends `signal` to the process and waits (bounded) for it to exit; SIGKILL after the deadline. */
export async function stopProcess(processHandle, signal = 'SIGTERM', deadlineMs = 15000) {
  if (!processHandle || hasExited(processHandle)) return;
  process.kill(processHandle.pid, signal);
  const stopped = await Promise.race([
    processHandle.exited.then(() => true),
    delay(deadlineMs).then(() => false),
  ]);
  if (!stopped && !hasExited(processHandle)) {
    process.kill(processHandle.pid, 'SIGKILL');
    await processHandle.exited;
  }
}

export function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns a truthy value or the deadline passes (then throws `what`). */
export async function waitFor(what, check, { timeoutMs = 30000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    await delay(intervalMs);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError.message}` : ''}`,
  );
}
