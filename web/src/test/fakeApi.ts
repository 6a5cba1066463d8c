import { vi } from 'vitest';
import { createApi } from '@/api/client';
import { setApi } from '@/api/instance';

export type Handler = (request: Request) => Response | Promise<Response>;

export const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

/**
 * Installs an API client whose `fetch` answers from `routes` (keyed by "METHOD /path"); an
 * unexpected request fails the test. Returns the recorded requests.
 */
export function installFakeApi(routes: Record<string, Handler>) {
  const requests: { method: string; path: string; search: string; body: string }[] = [];
  const fetch = vi.fn(async (request: Request) => {
    const url = new URL(request.url);
    requests.push({
      method: request.method,
      path: url.pathname,
      search: url.search,
      body: await request.clone().text(),
    });
    const handler = routes[`${request.method} ${url.pathname}`];
    if (handler === undefined) {
      throw new Error(`unexpected request ${request.method} ${url.pathname}`);
    }
    return handler(request);
  });
  setApi(
    createApi({ baseUrl: 'http://console.test', fetch, sleep: async () => undefined, readRetryDelaysMs: [] }),
  );
  return { requests, fetch };
}
