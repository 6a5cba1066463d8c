import { createApi, type Api } from './client';
import type { TransportEvents } from './transport';

/** Filled in by `main.ts` once the router and stores exist. */
export const apiEvents: TransportEvents = {};

let current: Api | null = null;

/** The console's one API client. */
export function useApi(): Api {
  if (current === null) {
    current = createApi({
      events: {
        unauthorized: () => apiEvents.unauthorized?.(),
        passwordChangeRequired: () => apiEvents.passwordChangeRequired?.(),
        changeUnreachable: () => apiEvents.changeUnreachable?.(),
        auditPaused: () => apiEvents.auditPaused?.(),
        reachable: () => apiEvents.reachable?.(),
      },
    });
  }
  return current;
}

/** Replaces the client (unit tests hand in one over a fake `fetch`). */
export function setApi(api: Api | null): void {
  current = api;
}
