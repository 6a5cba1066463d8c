import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createApi } from './client';
import { ApiError } from './errors';
import { rememberCsrfToken, readCsrfCookie } from './csrf';
import type { TransportEvents } from './transport';

type Step = Response | Error;

/** A fake `fetch` that answers from a script and records what it was asked. */
function scriptedFetch(steps: Step[]) {
  const requests: Request[] = [];
  const fetch = vi.fn(async (request: Request) => {
    requests.push(request);
    const step = steps.shift();
    if (step === undefined) throw new Error('the test script has no more answers');
    if (step instanceof Error) throw step;
    return step;
  });
  return { fetch, requests };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
const errorBody = (code: string, message = code, requestId = 'req-1') => ({
  code,
  message,
  request_id: requestId,
});
const gateway = (status: number) =>
  new Response('<html>bad gateway</html>', { status, headers: { 'content-type': 'text/html' } });
const reset = () => new TypeError('Failed to fetch: connection reset');

function clientWith(steps: Step[], events: TransportEvents = {}) {
  const scripted = scriptedFetch(steps);
  const sleeps: number[] = [];
  const api = createApi({
    baseUrl: 'http://console.test',
    fetch: scripted.fetch,
    sleep: async (milliseconds) => {
      sleeps.push(milliseconds);
    },
    readRetryDelaysMs: [10, 20, 40],
    events,
  });
  return { api, ...scripted, sleeps };
}

const clusterList = [
  {
    name: 'prod',
    description: '',
    endpoints: ['https://a:6443'],
    has_token: true,
    has_client_certificate: false,
    has_ca_certificate: true,
    created_at: '2026-12-06T00:00:00Z',
    updated_at: '2026-12-06T00:00:00Z',
  },
];

beforeEach(() => {
  rememberCsrfToken(null);
  document.cookie = 'kuboard_csrf=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/';
});
afterEach(() => {
  rememberCsrfToken(null);
});

describe('CSRF', () => {
  it('sends the remembered token with every change and none with reads', async () => {
    const { api, requests } = clientWith([
      json(200, clusterList),
      json(201, { id: 'k1' }),
      new Response(null, { status: 204 }),
    ]);
    rememberCsrfToken('csrf-from-login');
    await api.call(api.raw.GET('/kuboard-api/clusters'));
    await api.call(api.raw.POST('/kuboard-api/auth/access-keys', { body: { name: 'ci' } }));
    await api.call(api.raw.DELETE('/kuboard-api/auth/access-keys/{id}', { params: { path: { id: 'k1' } } }));
    expect(requests.map((request) => [request.method, request.headers.get('X-Kuboard-CSRF')])).toEqual([
      ['GET', null],
      ['POST', 'csrf-from-login'],
      ['DELETE', 'csrf-from-login'],
    ]);
  });

  it('after a reload takes the token from the readable kuboard_csrf cookie', async () => {
    document.cookie = 'kuboard_csrf=token-in-cookie; path=/';
    const { api, requests } = clientWith([json(200, { username: 'admin' })]);
    await api.call(
      api.raw.POST('/kuboard-api/auth/password', { body: { current_password: 'a', new_password: 'b' } }),
    );
    expect(requests[0]?.headers.get('X-Kuboard-CSRF')).toBe('token-in-cookie');
  });

  it('keeps nothing in localStorage or sessionStorage', async () => {
    localStorage.clear();
    sessionStorage.clear();
    const { api } = clientWith([
      json(200, {
        token: 'session-token',
        token_type: 'Bearer',
        csrf_token: 'csrf',
        username: 'admin',
        expires_at: '2026-12-07T00:00:00Z',
        must_change_password: false,
        remember: false,
      }),
    ]);
    const answer = await api.call(
      api.raw.POST('/kuboard-api/auth/login', { body: { username: 'admin', password: 'x' } }),
    );
    expect(answer.csrf_token).toBe('csrf');
    expect(localStorage.length).toBe(0);
    expect(sessionStorage.length).toBe(0);
  });

  it('reads the cookie among others', () => {
    expect(readCsrfCookie('a=1; kuboard_csrf=abc%3D; b=2')).toBe('abc=');
    expect(readCsrfCookie('a=1; kuboard_csrf=')).toBeNull();
    expect(readCsrfCookie('')).toBeNull();
  });
});

describe('retry rules', () => {
  it('retries a read after a connection reset and after 502, 503 and 504, with growing waits', async () => {
    const { api, fetch, sleeps } = clientWith([reset(), gateway(502), gateway(504), json(200, clusterList)]);
    const clusters = await api.call(api.raw.GET('/kuboard-api/clusters'));
    expect(clusters).toEqual(clusterList);
    expect(fetch).toHaveBeenCalledTimes(4);
    expect(sleeps).toEqual([10, 20, 40]);
  });

  it('gives up on a read after the last retry and reports the replicas unreachable', async () => {
    const { api, fetch } = clientWith([reset(), reset(), reset(), gateway(503)]);
    const failure = await api.call(api.raw.GET('/kuboard-api/clusters')).catch((error: unknown) => error);
    expect(fetch).toHaveBeenCalledTimes(4);
    expect(failure).toBeInstanceOf(ApiError);
    expect((failure as ApiError).kind).toBe('unreachable');
    expect((failure as ApiError).status).toBe(503);
  });

  it('does not retry a read that got an answer from the API (4xx)', async () => {
    const { api, fetch } = clientWith([json(404, errorBody('not_found'))]);
    await expect(
      api.call(api.raw.GET('/kuboard-api/clusters/{name}', { params: { path: { name: 'x' } } })),
    ).rejects.toMatchObject({ status: 404, code: 'not_found' });
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it('never retries a change after a connection reset, and reports reconnecting', async () => {
    const events = { changeUnreachable: vi.fn(), reachable: vi.fn() };
    const { api, fetch } = clientWith([reset(), json(201, {})], events);
    const failure = await api
      .call(api.raw.POST('/kuboard-api/users', { body: { username: 'dev', password: 'p' } }))
      .catch((error: unknown) => error);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(failure).toMatchObject({ kind: 'unreachable', status: 0 });
    expect(events.changeUnreachable).toHaveBeenCalledTimes(1);
  });

  it('never retries a change answered 502 by the load balancer, and reports reconnecting', async () => {
    const events = { changeUnreachable: vi.fn(), reachable: vi.fn() };
    const { api, fetch } = clientWith([gateway(502)], events);
    const failure = await api
      .call(api.raw.DELETE('/kuboard-api/clusters/{name}', { params: { path: { name: 'prod' } } }))
      .catch((error: unknown) => error);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(failure).toMatchObject({ kind: 'unreachable', status: 502 });
    expect(events.changeUnreachable).toHaveBeenCalledTimes(1);
    expect(events.reachable).not.toHaveBeenCalled();
  });

  it('treats a 503 with the API error body on a change as an answer, not as a lost replica', async () => {
    const events = { changeUnreachable: vi.fn(), auditPaused: vi.fn(), reachable: vi.fn() };
    const { api } = clientWith([json(503, errorBody('audit_unavailable', 'audit is paused'))], events);
    const failure = await api
      .call(api.raw.POST('/kuboard-api/users', { body: { username: 'dev', password: 'p' } }))
      .catch((error: unknown) => error);
    expect(failure).toMatchObject({ kind: 'http', code: 'audit_unavailable', message: 'audit is paused' });
    expect(events.changeUnreachable).not.toHaveBeenCalled();
    expect(events.auditPaused).toHaveBeenCalledTimes(1);
    expect(events.reachable).toHaveBeenCalledTimes(1);
  });
});

describe('error mapping', () => {
  it('keeps the code, message and request id of the error body', async () => {
    const { api } = clientWith([
      json(409, errorBody('cluster_exists', 'a cluster with this name exists', 'abc-123')),
    ]);
    const failure = (await api
      .call(api.raw.POST('/kuboard-api/cluster-imports', { body: { name: 'prod' } }))
      .catch((error: unknown) => error)) as ApiError;
    expect(failure).toBeInstanceOf(ApiError);
    expect([failure.kind, failure.status, failure.code, failure.message, failure.requestId]).toEqual([
      'http',
      409,
      'cluster_exists',
      'a cluster with this name exists',
      'abc-123',
    ]);
  });

  it('falls back to the x-request-id header for an answer without the error body', async () => {
    const { api } = clientWith([new Response('oops', { status: 500, headers: { 'x-request-id': 'hdr-9' } })]);
    await expect(api.call(api.raw.GET('/kuboard-api/auth/me'))).rejects.toMatchObject({
      status: 500,
      code: 'unexpected_response',
      requestId: 'hdr-9',
    });
  });

  it('reports 401 as a lost session, except for the login call itself', async () => {
    const events = { unauthorized: vi.fn() };
    const { api } = clientWith(
      [json(401, errorBody('unauthenticated')), json(401, errorBody('invalid_credentials'))],
      events,
    );
    await expect(api.call(api.raw.GET('/kuboard-api/clusters'))).rejects.toMatchObject({ status: 401 });
    expect(events.unauthorized).toHaveBeenCalledTimes(1);
    await expect(
      api.call(api.raw.POST('/kuboard-api/auth/login', { body: { username: 'a', password: 'b' } })),
    ).rejects.toMatchObject({ status: 401, code: 'invalid_credentials' });
    expect(events.unauthorized).toHaveBeenCalledTimes(1);
  });

  it('reports password_change_required and no other 403', async () => {
    const events = { passwordChangeRequired: vi.fn() };
    const { api } = clientWith(
      [json(403, errorBody('password_change_required')), json(403, errorBody('forbidden'))],
      events,
    );
    await expect(api.call(api.raw.GET('/kuboard-api/clusters'))).rejects.toMatchObject({
      code: 'password_change_required',
    });
    await expect(api.call(api.raw.GET('/kuboard-api/users'))).rejects.toMatchObject({ code: 'forbidden' });
    expect(events.passwordChangeRequired).toHaveBeenCalledTimes(1);
  });

  it('carries the wait of a 429 from Retry-After', async () => {
    const { api } = clientWith([json(429, errorBody('too_many_attempts'), { 'retry-after': '42' })]);
    await expect(
      api.call(api.raw.POST('/kuboard-api/auth/login', { body: { username: 'a', password: 'b' } })),
    ).rejects.toMatchObject({ status: 429, code: 'too_many_attempts', retryAfterSeconds: 42 });
  });
});
