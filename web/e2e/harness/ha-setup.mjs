// Three release replicas of kuboard behind nginx, as the install guide's high-availability set-up
// runs them, plus what they talk to: a fake Kubernetes apiserver of three instances sharing one
// state (the cluster the suite imports) and PostgreSQL as the PG-wire audit database (with several
// replicas the audit log must be one database, not a local log per replica).
//
// Everything binds 127.0.0.1 on free ports and lives in one temporary directory; `stop()` ends
// only the processes started here, by pid.
//
// KUBOARD_BIN: the kuboard binary (default target/release/kuboard).
// KUBOARD_FAKE_APISERVER_BIN: the fake apiserver (default target/release, else target/debug).

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
  chownSync,
  chmodSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { freePort, hasExited, startProcess, stopProcess, waitFor } from './processes.mjs';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const POSTGRES_BIN = '/usr/lib/postgresql/15/bin';
const NGINX_BIN = '/usr/sbin/nginx';
const REPLICAS = 3;

function requireFile(path, hint) {
  if (!existsSync(path)) throw new Error(`${path} is missing: ${hint}`);
  return path;
}

function kuboardBinary() {
  const path = resolve(REPO_ROOT, process.env.KUBOARD_BIN ?? 'target/release/kuboard');
  return requireFile(path, 'build it with `cargo build --release --bins` (or set KUBOARD_BIN)');
}

function fakeApiserverBinary() {
  if (process.env.KUBOARD_FAKE_APISERVER_BIN) {
    return requireFile(
      resolve(REPO_ROOT, process.env.KUBOARD_FAKE_APISERVER_BIN),
      'KUBOARD_FAKE_APISERVER_BIN',
    );
  }
  for (const profile of ['release', 'debug']) {
    const path = join(REPO_ROOT, 'target', profile, 'kuboard-fake-apiserver');
    if (existsSync(path)) return path;
  }
  throw new Error('kuboard-fake-apiserver is missing: build it with `cargo build --release --bins`');
}

async function httpStatus(url) {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

/** The uid and gid PostgreSQL runs as: `postgres` when we are root (it refuses root), else ours. */
function postgresIds() {
  if (process.getuid() !== 0) return {};
  const id = (flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

async function startPostgres(dir) {
  requireFile(
    join(POSTGRES_BIN, 'postgres'),
    'install the Debian package postgresql (scripts/install-deps.sh test)',
  );
  const ids = postgresIds();
  mkdirSync(join(dir, 'sock'), { recursive: true });
  if (ids.uid !== undefined) {
    for (const path of [dir, join(dir, 'sock')]) chownSync(path, ids.uid, ids.gid);
  }
  execFileSync(
    join(POSTGRES_BIN, 'initdb'),
    ['-A', 'trust', '-U', 'kuboard', '--no-sync', '-D', join(dir, 'data')],
    {
      stdio: 'ignore',
      ...ids,
    },
  );
  const port = await freePort();
  const handle = startProcess(
    join(POSTGRES_BIN, 'postgres'),
    [
      '-D',
      join(dir, 'data'),
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '-k',
      join(dir, 'sock'),
      '-c',
      'fsync=off',
    ],
    { logPath: join(dir, 'postgres.log'), ...ids },
  );
  await waitFor(
    'PostgreSQL to accept connections',
    () => readFileSync(handle.logPath, 'utf8').includes('ready to accept connections'),
    {
      timeoutMs: 30000,
    },
  );
  return { handle, uri: `postgresql://kuboard@127.0.0.1:${port}/postgres` };
}

async function startFakeApiserver(dir, extraArguments) {
  const handle = startProcess(
    fakeApiserverBinary(),
    ['--instances', '3', '--dir', dir, '--admin-group', 'kuboard:administrators', ...extraArguments],
    { logPath: join(dir, '..', 'fake-apiserver.log') },
  );
  const log = await waitFor('the fake apiserver to write its kubeconfigs', () => {
    if (hasExited(handle)) throw new Error('the fake apiserver exited');
    const text = readFileSync(handle.logPath, 'utf8');
    return text.includes('kubeconfigs in') ? text : null;
  });
  const urls = [...log.matchAll(/\s(https:\/\/127\.0\.0\.1:\d+)\s*$/gm)].map((match) => match[1]);
  if (urls.length !== 3) throw new Error(`expected 3 fake apiserver URLs, found ${urls.length}:\n${log}`);
  const tokenKubeconfig = readFileSync(join(dir, 'token.kubeconfig'), 'utf8');
  const token = /token:\s*"?([^"\s]+)"?/.exec(tokenKubeconfig)?.[1];
  if (!token) throw new Error('no token in the fake apiserver token.kubeconfig');
  return { handle, urls, token, ca: readFileSync(join(dir, 'ca.crt'), 'utf8') };
}

function nginxConfig({ dir, port, upstreamPorts }) {
  const runAsRoot = process.getuid() === 0 ? 'user root;' : '';
  const servers = upstreamPorts
    .map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=5s;`)
    .join('\n');
  return `${runAsRoot}
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 512; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream kuboard {
${servers}
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://kuboard;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      # A replica that died is skipped: connection refused or reset, or its 502/503 while it stops.
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries 3;
      proxy_connect_timeout 1s;
      proxy_read_timeout 60s;
    }
  }
}
`;
}

async function startNginx(dir, upstreamPorts) {
  requireFile(NGINX_BIN, 'install the Debian package nginx (scripts/install-deps.sh test)');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  writeFileSync(join(dir, 'nginx.conf'), nginxConfig({ dir, port, upstreamPorts }));
  const handle = startProcess(NGINX_BIN, ['-p', dir, '-c', join(dir, 'nginx.conf')], {
    logPath: join(dir, 'nginx.out'),
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor('nginx to answer', async () => {
    if (hasExited(handle)) throw new Error(`nginx exited: ${readFileSync(join(dir, 'nginx.out'), 'utf8')}`);
    return (await httpStatus(`${url}/healthz`)) === 200;
  });
  return { handle, url };
}

/** Starts the whole set-up; the caller must `await environment.stop()`. */
/**
 * `fakeArguments`: more arguments of the fake apiserver, e.g. `--workload-controllers` or
 * `--viewer-group kuboard:viewers` (Kuboard's viewer role gets read-only access).
 */
export async function startEnvironment({ fakeArguments = [] } = {}) {
  const binary = kuboardBinary();
  const root = mkdtempSync(join(tmpdir(), 'kuboard-console-e2e-'));
  // PostgreSQL runs as its own user and must reach its directory inside.
  chmodSync(root, 0o755);
  const environment = { root, replicas: [], handles: [] };
  environment.stop = async () => {
    for (const handle of environment.handles.reverse()) {
      await stopProcess(handle, handle === environment.postgres?.handle ? 'SIGINT' : 'SIGTERM');
    }
    if (!process.env.KUBOARD_E2E_KEEP) rmSync(root, { recursive: true, force: true });
  };
  try {
    mkdirSync(join(root, 'pg'));
    environment.postgres = await startPostgres(join(root, 'pg'));
    environment.handles.push(environment.postgres.handle);
    mkdirSync(join(root, 'fake'));
    environment.fake = await startFakeApiserver(join(root, 'fake'), fakeArguments);
    environment.handles.push(environment.fake.handle);

    const raftPorts = [];
    for (let i = 0; i < REPLICAS; i += 1) raftPorts.push(await freePort());
    const peers = raftPorts.map((port, index) => `${index + 1}=127.0.0.1:${port}`).join(',');
    const clusterSecret = randomBytes(24).toString('hex');
    const ssoSecret = randomBytes(24).toString('hex');
    for (let index = 0; index < REPLICAS; index += 1) {
      const id = index + 1;
      const port = await freePort();
      const dataDir = join(root, `replica-${id}`);
      mkdirSync(dataDir);
      const handle = startProcess(binary, ['serve'], {
        logPath: join(root, `replica-${id}.log`),
        env: {
          KUBOARD_SERVER_ADDR: '127.0.0.1',
          KUBOARD_SERVER_PORT: String(port),
          KUBOARD_RAFT_ADDR: '127.0.0.1',
          KUBOARD_RAFT_PORT: String(raftPorts[index]),
          KUBOARD_RAFT_NODE_ID: String(id),
          KUBOARD_RAFT_PEERS: peers,
          KUBOARD_DATA_DIR: dataDir,
          KUBOARD_CLUSTER_SECRET: clusterSecret,
          KUBOARD_SSO_CLIENT_SECRET: ssoSecret,
          KUBOARD_QUEST_DB_URI: environment.postgres.uri,
        },
      });
      environment.handles.push(handle);
      environment.replicas.push({ id, port, handle, url: `http://127.0.0.1:${port}` });
    }
    for (const replica of environment.replicas) {
      await waitFor(
        `replica ${replica.id} to be ready`,
        async () => {
          if (hasExited(replica.handle))
            throw new Error(`replica ${replica.id} exited; see ${replica.handle.logPath}`);
          return (await httpStatus(`${replica.url}/readyz`)) === 200;
        },
        { timeoutMs: 60000 },
      );
    }
    environment.nginx = await startNginx(
      join(root, 'nginx'),
      environment.replicas.map((replica) => replica.port),
    );
    environment.handles.push(environment.nginx.handle);
    environment.url = environment.nginx.url;
  } catch (error) {
    await environment.stop();
    throw error;
  }
  /** kill -9 of one replica (by its id), waiting until it is gone. */
  environment.kill9 = async (id) => {
    const replica = environment.replicas.find((candidate) => candidate.id === id);
    if (!replica) throw new Error(`no replica ${id}`);
    process.kill(replica.handle.pid, 'SIGKILL');
    await replica.handle.exited;
  };
  return environment;
}
