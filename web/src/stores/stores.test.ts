import { beforeEach, describe, expect, it } from 'vitest';
import { createPinia, setActivePinia } from 'pinia';
import { setApi } from '@/api/instance';
import { currentCsrfToken, rememberCsrfToken } from '@/api/csrf';
import { installFakeApi, json } from '@/test/fakeApi';
import { useSessionStore } from './session';
import { useConnectionStore } from './connection';
import { useClustersStore, type Cluster } from './clusters';
import { auditQuery, emptyFilters, useAuditStore } from './audit';
import { membershipWarnings, type SystemStatus } from './system';
import { useUsersStore } from './users';

const me = {
  username: 'admin',
  role: 'administrator',
  groups: [],
  must_change_password: true,
  session_expires_at: '2026-12-07T00:00:00Z',
  access_key: false,
};
const loginAnswer = {
  token: 'tok',
  token_type: 'Bearer',
  csrf_token: 'csrf-1',
  username: 'admin',
  expires_at: '2026-12-07T00:00:00Z',
  must_change_password: true,
  remember: true,
};
const cluster = (name: string, endpoints: string[]): Cluster => ({
  name,
  description: '',
  endpoints,
  has_token: true,
  has_client_certificate: false,
  has_ca_certificate: false,
  created_at: '2026-12-06T00:00:00Z',
  updated_at: '2026-12-06T00:00:00Z',
});

beforeEach(() => {
  setActivePinia(createPinia());
  setApi(null);
  rememberCsrfToken(null);
});

describe('session store', () => {
  it('logs in, remembers the CSRF token in memory and loads who the user is', async () => {
    const { requests } = installFakeApi({
      'POST /kuboard-api/auth/login': () => json(200, loginAnswer),
      'GET /kuboard-api/auth/me': () => json(200, me),
    });
    const session = useSessionStore();
    const answer = await session.login('admin', 'Kuboard123', true);
    expect(answer.must_change_password).toBe(true);
    expect(JSON.parse(requests[0]?.body ?? '')).toEqual({
      username: 'admin',
      password: 'Kuboard123',
      remember: true,
    });
    expect(currentCsrfToken()).toBe('csrf-1');
    expect(session.me?.username).toBe('admin');
    expect(session.isAdministrator).toBe(true);
    expect(session.mustChangePassword).toBe(true);
  });

  it('treats 401 from auth/me as logged out, and other failures as failures', async () => {
    installFakeApi({
      'GET /kuboard-api/auth/me': () => json(401, { code: 'unauthenticated', message: 'x', request_id: 'r' }),
    });
    const session = useSessionStore();
    expect(await session.refresh()).toBeNull();
    expect(session.checked).toBe(true);

    installFakeApi({
      'GET /kuboard-api/auth/me': () => json(500, { code: 'internal', message: 'x', request_id: 'r' }),
    });
    await expect(session.refresh()).rejects.toMatchObject({ code: 'internal' });
  });

  it('clears the password-change flag after the change', async () => {
    installFakeApi({
      'GET /kuboard-api/auth/me': () => json(200, me),
      'POST /kuboard-api/auth/password': () =>
        json(200, { username: 'admin', must_change_password: false, other_sessions_ended: 0 }),
    });
    const session = useSessionStore();
    await session.refresh();
    await session.changePassword('Kuboard123', 'a-better-secret');
    expect(session.mustChangePassword).toBe(false);
  });

  it('forgets the user and the CSRF token on logout even when no replica answers', async () => {
    installFakeApi({
      'GET /kuboard-api/auth/me': () => json(200, me),
      'POST /kuboard-api/auth/logout': () => {
        throw new TypeError('connection reset');
      },
    });
    const session = useSessionStore();
    await session.refresh();
    rememberCsrfToken('csrf-1');
    await expect(session.logout()).rejects.toMatchObject({ kind: 'unreachable' });
    expect(session.me).toBeNull();
    expect(currentCsrfToken()).toBeNull();
  });
});

describe('connection store', () => {
  it('shows reconnecting until a replica answers; dismissing hides it until the next failure', () => {
    const connection = useConnectionStore();
    connection.changeUnreachable();
    expect([connection.reconnecting, connection.dismissed]).toEqual([true, false]);
    connection.dismiss();
    expect(connection.dismissed).toBe(true);
    connection.changeUnreachable();
    expect(connection.dismissed).toBe(false);
    connection.reachable();
    expect(connection.reconnecting).toBe(false);
  });
});

describe('clusters store', () => {
  it('loads the list sorted and pairs each endpoint with its balancer state', async () => {
    installFakeApi({
      'GET /kuboard-api/clusters': () =>
        json(200, [
          cluster('zeta', ['https://z:6443']),
          cluster('alpha', ['https://a:6443', 'https://b:6443', 'https://c:6443']),
        ]),
      'GET /kuboard-api/clusters/alpha/endpoints': () =>
        json(200, {
          cluster: 'alpha',
          endpoints: [
            {
              url: 'https://a:6443',
              state: 'preferred',
              open_connections: 1,
              consecutive_passes: 3,
              consecutive_failures: 0,
              requests: 5,
            },
            {
              url: 'https://b:6443',
              state: 'failed',
              open_connections: 0,
              consecutive_passes: 0,
              consecutive_failures: 4,
              requests: 0,
            },
            {
              url: 'https://c:6443',
              state: 'recovering',
              open_connections: 0,
              consecutive_passes: 1,
              consecutive_failures: 0,
              requests: 0,
            },
          ],
        }),
      'GET /kuboard-api/clusters/zeta/endpoints': () =>
        json(404, { code: 'not_found', message: 'gone', request_id: 'r' }),
    });
    const store = useClustersStore();
    await store.load();
    expect(store.clusters.map((entry) => entry.name)).toEqual(['alpha', 'zeta']);
    await store.loadEndpoints(['alpha', 'zeta']);
    const [alpha, zeta] = store.clusters as [Cluster, Cluster];
    expect(store.endpointStates(alpha).map((endpoint) => endpoint.state)).toEqual([
      'preferred',
      'failed',
      'recovering',
    ]);
    expect(store.endpointStates(zeta).map((endpoint) => endpoint.state)).toEqual(['unknown']);
    expect(store.endpointErrors.zeta).toMatchObject({ code: 'not_found' });
  });

  it('keeps the last list and reports the error when a reload fails', async () => {
    installFakeApi({ 'GET /kuboard-api/clusters': () => json(200, [cluster('alpha', [])]) });
    const store = useClustersStore();
    await store.load();
    installFakeApi({
      'GET /kuboard-api/clusters': () => json(500, { code: 'internal', message: 'x', request_id: 'r' }),
    });
    await store.load();
    expect(store.clusters).toHaveLength(1);
    expect(store.error).toMatchObject({ code: 'internal' });
  });
});

describe('audit store', () => {
  it('turns the filters into the API query (microseconds, numbers, no blanks)', () => {
    const filters = {
      ...emptyFilters(),
      user: ' dev ',
      status: '403',
      from: 1_000,
      to: 2_000,
      resource: 'pods',
    };
    expect(auditQuery(filters, 'c2')).toEqual({
      user: 'dev',
      cluster: undefined,
      verb: undefined,
      resource: 'pods',
      namespace: undefined,
      status: 403,
      from: 1_000_000,
      to: 2_000_000,
      limit: 50,
      cursor: 'c2',
    });
  });

  it('pages with the cursors and goes back to newer pages', async () => {
    const page = (id: string, next: string | null) => ({
      events: [{ audit_id: id, resource: 'pods' }],
      next_cursor: next,
    });
    const { requests } = installFakeApi({
      'GET /kuboard-api/audit': (request) => {
        const cursor = new URL(request.url).searchParams.get('cursor');
        return json(
          200,
          cursor === null ? page('one', 'c2') : cursor === 'c2' ? page('two', 'c3') : page('three', null),
        );
      },
    });
    const audit = useAuditStore();
    await audit.search();
    await audit.next();
    await audit.next();
    expect([audit.pageNumber, audit.events[0]?.audit_id, audit.nextCursor]).toEqual([3, 'three', null]);
    await audit.previous();
    expect([audit.pageNumber, audit.events[0]?.audit_id]).toEqual([2, 'two']);
    expect(requests.map((request) => new URLSearchParams(request.search).get('cursor'))).toEqual([
      null,
      'c2',
      'c3',
      'c2',
    ]);
  });
});

describe('users store', () => {
  it('derives the groups and their members from the users', async () => {
    const user = (username: string, groups: string[]) => ({
      username,
      role: 'viewer',
      groups,
      disabled: false,
      must_change_password: false,
      created_at: '',
      updated_at: '',
    });
    installFakeApi({
      'GET /kuboard-api/users': () => json(200, [user('bob', ['ops']), user('amy', ['dev', 'ops'])]),
      'GET /kuboard-api/role-bindings': () => json(200, []),
    });
    const store = useUsersStore();
    await store.load();
    expect(store.groups).toEqual([
      { name: 'dev', usernames: ['amy'] },
      { name: 'ops', usernames: ['amy', 'bob'] },
    ]);
  });
});

describe('membership warnings', () => {
  const status: SystemStatus = {
    replica_id: 2,
    version: '0',
    commit: 'x',
    backend: 'raft',
    leader: 1,
    revision: 10,
    raft_term: 3,
    healthy: true,
    audit_policy: 'disabled',
    members: [
      { id: 1, address: 'a:1', role: 'leader', healthy: true },
      { id: 2, address: 'b:1', role: 'follower', healthy: true },
      { id: 3, address: 'c:1', role: 'follower', healthy: false },
    ],
  };
  it('warns about removing the leader, this replica, and losing fault tolerance', () => {
    expect(membershipWarnings('remove', { id: 1 }, status)).toEqual([
      'system.warnings.removingLeader',
      'system.warnings.noFaultTolerance',
    ]);
    expect(membershipWarnings('remove', { id: 2 }, status)).toEqual([
      'system.warnings.removingThisReplica',
      'system.warnings.noFaultTolerance',
    ]);
  });
  it('warns about an id in use and a replace without a healthy majority', () => {
    expect(membershipWarnings('add', { id: 3 }, status)).toEqual(['system.warnings.idInUse']);
    expect(membershipWarnings('add', { id: 4 }, status)).toEqual([]);
    expect(membershipWarnings('replace', { id: 2 }, status)).toEqual(['system.warnings.quorumAtRisk']);
    expect(membershipWarnings('replace', { id: 3 }, status)).toEqual([]);
  });
});
