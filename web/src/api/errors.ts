/** What went wrong with an API call, in a form a page can show and act on. */
export type ApiErrorKind =
  /** The server answered with an error body (`{code, message, request_id}`). */
  | 'http'
  /** No replica answered (connection reset, refused, or 502/503/504 from the load balancer). */
  | 'unreachable';

export class ApiError extends Error {
  readonly kind: ApiErrorKind;
  readonly status: number;
  readonly code: string;
  readonly requestId: string | null;
  /** Seconds to wait before trying again (429 `Retry-After`). */
  readonly retryAfterSeconds: number | null;

  constructor(init: {
    kind: ApiErrorKind;
    status: number;
    code: string;
    message: string;
    requestId?: string | null;
    retryAfterSeconds?: number | null;
  }) {
    super(init.message);
    this.name = 'ApiError';
    this.kind = init.kind;
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId ?? null;
    this.retryAfterSeconds = init.retryAfterSeconds ?? null;
  }
}

/** Status codes a load balancer answers with when the replica behind it died or is restarting. */
export const GATEWAY_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);

interface ErrorBodyShape {
  code: string;
  message: string;
  request_id: string;
}

function isErrorBody(value: unknown): value is ErrorBodyShape {
  if (typeof value !== 'object' || value === null) {
    return false;
  }
  const record = value as Record<string, unknown>;
  return typeof record.code === 'string' && typeof record.message === 'string';
}

function parseRetryAfter(header: string | null): number | null {
  if (header === null) {
    return null;
  }
  const seconds = Number.parseInt(header, 10);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

/**
 * Maps an error response to an `ApiError`. `body` is the parsed JSON body when there was one.
 * A gateway status without the API's error body (nginx's own page) means no replica answered.
 */
export function errorFromResponse(response: Response, body: unknown): ApiError {
  const headerRequestId = response.headers.get('x-request-id');
  const retryAfterSeconds = parseRetryAfter(response.headers.get('retry-after'));
  if (isErrorBody(body)) {
    return new ApiError({
      kind: 'http',
      status: response.status,
      code: body.code,
      message: body.message,
      requestId: typeof body.request_id === 'string' ? body.request_id : headerRequestId,
      retryAfterSeconds,
    });
  }
  if (GATEWAY_STATUSES.has(response.status)) {
    return new ApiError({
      kind: 'unreachable',
      status: response.status,
      code: 'unreachable',
      message: `HTTP ${response.status}`,
      requestId: headerRequestId,
      retryAfterSeconds,
    });
  }
  return new ApiError({
    kind: 'http',
    status: response.status,
    code: 'unexpected_response',
    message: `HTTP ${response.status}`,
    requestId: headerRequestId,
    retryAfterSeconds,
  });
}

/** The error of a request that never got an answer (the fetch promise rejected). */
export function unreachableError(cause: unknown): ApiError {
  const message = cause instanceof Error ? cause.message : String(cause);
  return new ApiError({ kind: 'unreachable', status: 0, code: 'unreachable', message });
}

export function isApiError(value: unknown): value is ApiError {
  return value instanceof ApiError;
}
