import { currentCsrfToken, CSRF_HEADER } from './csrf';
import { GATEWAY_STATUSES } from './errors';

/** Things the transport tells the rest of the console about (session lost, replica gone, ...). */
export interface TransportEvents {
  /** 401 on anything but the login call: the session is gone. */
  unauthorized?: () => void;
  /** 403 `password_change_required`. */
  passwordChangeRequired?: () => void;
  /** A change got no answer from any replica; it was not retried. */
  changeUnreachable?: () => void;
  /** 503 `audit_unavailable`: strict audit pauses changes. */
  auditPaused?: () => void;
  /** Any answer from a replica (the connection is back). */
  reachable?: () => void;
}

export interface TransportOptions {
  fetch: (request: Request) => Promise<Response>;
  sleep: (milliseconds: number) => Promise<void>;
  /** Waits before each retry of an idempotent read; its length is the number of retries. */
  readRetryDelaysMs: readonly number[];
  events: TransportEvents;
}

export const DEFAULT_READ_RETRY_DELAYS_MS: readonly number[] = [200, 400, 800, 1600, 3200];

const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);
const LOGIN_PATH = '/kuboard-api/auth/login';

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT_METHODS.has(method.toUpperCase());
}

async function errorCode(response: Response): Promise<string | null> {
  try {
    const body: unknown = await response.clone().json();
    if (typeof body === 'object' && body !== null && typeof (body as { code?: unknown }).code === 'string') {
      return (body as { code: string }).code;
    }
  } catch {
    // Not JSON: a load balancer's page, not the API's error body.
  }
  return null;
}

async function report(request: Request, response: Response, events: TransportEvents): Promise<void> {
  const path = new URL(request.url).pathname;
  if (response.status === 401 && path !== LOGIN_PATH) {
    events.unauthorized?.();
  } else if (response.status === 403 && (await errorCode(response)) === 'password_change_required') {
    events.passwordChangeRequired?.();
  } else if (response.status === 503 && (await errorCode(response)) === 'audit_unavailable') {
    events.auditPaused?.();
  }
}

/**
 * A `fetch` for the API client that
 * - sends the CSRF header with every change (the session is the cookie, sent same-origin only),
 * - retries idempotent reads with backoff when no replica answered (connection reset or refused,
 *   502/503/504), since another replica behind the load balancer can answer them,
 * - never retries a change: whether it was applied is unknown, so the user decides.
 */
export function createTransport(options: TransportOptions): (request: Request) => Promise<Response> {
  return async (request: Request): Promise<Response> => {
    const idempotent = isIdempotent(request.method);
    if (!idempotent) {
      const token = currentCsrfToken();
      if (token !== null) {
        request.headers.set(CSRF_HEADER, token);
      }
    }
    const attempts = idempotent ? options.readRetryDelaysMs.length + 1 : 1;
    for (let attempt = 0; ; attempt += 1) {
      const last = attempt + 1 >= attempts;
      let response: Response;
      try {
        // A read has no body, so the same request can be sent again; a clone keeps it unused.
        response = await options.fetch(last ? request : request.clone());
      } catch (error) {
        if (last) {
          if (!idempotent) {
            options.events.changeUnreachable?.();
          }
          throw error;
        }
        await options.sleep(options.readRetryDelaysMs[attempt] ?? 0);
        continue;
      }
      if (GATEWAY_STATUSES.has(response.status) && !last) {
        await options.sleep(options.readRetryDelaysMs[attempt] ?? 0);
        continue;
      }
      if (GATEWAY_STATUSES.has(response.status) && !idempotent && (await errorCode(response)) === null) {
        options.events.changeUnreachable?.();
      } else {
        options.events.reachable?.();
      }
      await report(request, response, options.events);
      return response;
    }
  };
}
