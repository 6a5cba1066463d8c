import { ApiError, isApiError, unreachableError } from '@/api/errors';
import { apiEvents } from '@/api/instance';
import { createTransport, DEFAULT_READ_RETRY_DELAYS_MS } from '@/api/transport';

/** `Accept` that asks the apiserver for its own printer columns (a `meta.k8s.io/v1` `Table`). */
export const TABLE_ACCEPT = 'application/json;as=Table;g=meta.k8s.io;v=v1,application/json';

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  accept?: string;
  signal?: AbortSignal;
}

export interface SendOptions {
  query?: Query;
  /** Sent as JSON. */
  body?: unknown;
  /** `Content-Type` of the body (a patch names its kind here); `application/json` by default. */
  contentType?: string;
}

export interface KubeClient {
  /** GET `/k8s-api/{cluster}{path}` and its JSON body; a failure is an `ApiError`. */
  get<T>(cluster: string, path: string, options?: RequestOptions): Promise<T>;
  /** GET `/k8s-api/{cluster}{path}` answered with 2xx, its body unread (a watch stream). */
  open(cluster: string, path: string, options?: RequestOptions): Promise<Response>;
  /**
   * A change (`POST`, `PUT`, `PATCH`, `DELETE`) of `/k8s-api/{cluster}{path}` and the JSON of its
   * answer. The console's CSRF header goes with it; it is never retried (another replica might
   * apply it twice).
   */
  send<T>(cluster: string, method: string, path: string, options?: SendOptions): Promise<T>;
}

export interface KubeClientOptions {
  baseUrl?: string;
  fetch?: (request: Request) => Promise<Response>;
  sleep?: (milliseconds: number) => Promise<void>;
  readRetryDelaysMs?: readonly number[];
}

/** The URL of `path` of a cluster's Kubernetes API through the proxy, with `query` (unset values left out). */
export function kubeUrl(baseUrl: string, cluster: string, path: string, query: Query = {}): string {
  const url = new URL(`/k8s-api/${encodeURIComponent(cluster)}${path}`, baseUrl);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== '') {
      url.searchParams.set(key, String(value));
    }
  }
  return url.toString();
}

interface StatusShape {
  kind?: unknown;
  message?: unknown;
  reason?: unknown;
  code?: unknown;
}

/**
 * An error answer of the proxy or the apiserver as an `ApiError`: Kuboard's own body
 * (`{code, message, request_id}`) or Kubernetes' `Status` (its `reason` becomes the code).
 */
export function kubeError(response: Response, body: unknown): ApiError {
  const requestId = response.headers.get('x-request-id');
  if (typeof body === 'object' && body !== null) {
    const record = body as StatusShape & { request_id?: unknown };
    if (record.kind === 'Status' && typeof record.message === 'string') {
      return new ApiError({
        kind: 'http',
        status: response.status,
        code: typeof record.reason === 'string' && record.reason !== '' ? record.reason : 'kubernetes_error',
        message: record.message,
        requestId,
      });
    }
    if (typeof record.code === 'string' && typeof record.message === 'string') {
      return new ApiError({
        kind: 'http',
        status: response.status,
        code: record.code,
        message: record.message,
        requestId: typeof record.request_id === 'string' ? record.request_id : requestId,
      });
    }
  }
  const gateway = response.status === 502 || response.status === 503 || response.status === 504;
  return new ApiError({
    kind: gateway ? 'unreachable' : 'http',
    status: response.status,
    code: gateway ? 'unreachable' : 'unexpected_response',
    message: `HTTP ${response.status}`,
    requestId,
  });
}

const realSleep = (milliseconds: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, milliseconds);
  });

/**
 * Reads a cluster's Kubernetes API through `/k8s-api/{cluster}` as the logged-in user: the session
 * cookie goes with every request, and the console's transport retries reads another replica can
 * answer and reports a lost session.
 */
export function createKubeClient(options: KubeClientOptions = {}): KubeClient {
  const baseUrl =
    options.baseUrl ?? (typeof window === 'undefined' ? 'http://localhost' : window.location.origin);
  const transport = createTransport({
    fetch: options.fetch ?? ((request) => globalThis.fetch(request)),
    sleep: options.sleep ?? realSleep,
    readRetryDelaysMs: options.readRetryDelaysMs ?? DEFAULT_READ_RETRY_DELAYS_MS,
    events: {
      unauthorized: () => apiEvents.unauthorized?.(),
      passwordChangeRequired: () => apiEvents.passwordChangeRequired?.(),
      reachable: () => apiEvents.reachable?.(),
    },
  });
  async function exchange(request: Request): Promise<Response> {
    let response: Response;
    try {
      response = await transport(request);
    } catch (cause) {
      throw isApiError(cause) ? cause : unreachableError(cause);
    }
    if (!response.ok) {
      let body: unknown = null;
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      throw kubeError(response, body);
    }
    return response;
  }
  function open(cluster: string, path: string, request: RequestOptions = {}): Promise<Response> {
    return exchange(
      new Request(kubeUrl(baseUrl, cluster, path, request.query), {
        method: 'GET',
        headers: new Headers({ accept: request.accept ?? 'application/json' }),
        credentials: 'same-origin',
        signal: request.signal,
      }),
    );
  }
  async function readJson<T>(response: Response): Promise<T> {
    try {
      return (await response.json()) as T;
    } catch {
      throw new ApiError({
        kind: 'http',
        status: response.status,
        code: 'unexpected_response',
        message: `HTTP ${response.status}: not JSON`,
        requestId: response.headers.get('x-request-id'),
      });
    }
  }
  return {
    open,
    async get<T>(cluster: string, path: string, request: RequestOptions = {}) {
      return readJson<T>(await open(cluster, path, request));
    },
    async send<T>(cluster: string, method: string, path: string, request: SendOptions = {}) {
      const headers = new Headers({ accept: 'application/json' });
      if (request.body !== undefined) {
        headers.set('content-type', request.contentType ?? 'application/json');
      }
      const response = await exchange(
        new Request(kubeUrl(baseUrl, cluster, path, request.query), {
          method,
          headers,
          body: request.body === undefined ? undefined : JSON.stringify(request.body),
          credentials: 'same-origin',
        }),
      );
      return readJson<T>(response);
    },
  };
}

let current: KubeClient | null = null;

/** The console's one client of the clusters' Kubernetes APIs. */
export function useKube(): KubeClient {
  current ??= createKubeClient();
  return current;
}

/** Replaces the client (unit tests hand in one over a fake `fetch`). */
export function setKube(client: KubeClient | null): void {
  current = client;
}
