import createClient, { type Client } from 'openapi-fetch';
import type { paths } from './schema';
import { errorFromResponse, isApiError, unreachableError } from './errors';
import { createTransport, DEFAULT_READ_RETRY_DELAYS_MS, type TransportEvents } from './transport';

export type ApiPaths = paths;
export type Schemas = import('./schema').components['schemas'];

/** The generated client for `/kuboard-api`, plus `call` to turn its answer into data or an `ApiError`. */
export interface Api {
  raw: Client<paths>;
  call<T>(request: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T>;
}

export interface ApiOptions {
  baseUrl?: string;
  fetch?: (request: Request) => Promise<Response>;
  sleep?: (milliseconds: number) => Promise<void>;
  readRetryDelaysMs?: readonly number[];
  events?: TransportEvents;
}

const realSleep = (milliseconds: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, milliseconds);
  });

export function createApi(options: ApiOptions = {}): Api {
  const transport = createTransport({
    fetch: options.fetch ?? ((request) => globalThis.fetch(request)),
    sleep: options.sleep ?? realSleep,
    readRetryDelaysMs: options.readRetryDelaysMs ?? DEFAULT_READ_RETRY_DELAYS_MS,
    events: options.events ?? {},
  });
  const raw = createClient<paths>({
    baseUrl: options.baseUrl ?? (typeof window === 'undefined' ? 'http://localhost' : window.location.origin),
    credentials: 'same-origin',
    fetch: transport,
  });
  return {
    raw,
    async call<T>(request: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
      let answer: { data?: T; error?: unknown; response: Response };
      try {
        answer = await request;
      } catch (cause) {
        throw isApiError(cause) ? cause : unreachableError(cause);
      }
      if (!answer.response.ok) {
        throw errorFromResponse(answer.response, answer.error);
      }
      return answer.data as T;
    },
  };
}
