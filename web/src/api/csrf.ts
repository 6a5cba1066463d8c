/**
 * The session's CSRF token. It is kept in memory only; after a reload it is read again from the
 * `kuboard_csrf` cookie, which the server sets readable for exactly this purpose (the session itself
 * is the HttpOnly `kuboard_session` cookie, which scripts cannot read).
 */
export const CSRF_HEADER = 'X-Kuboard-CSRF';
export const CSRF_COOKIE = 'kuboard_csrf';

let remembered: string | null = null;

export function rememberCsrfToken(token: string | null): void {
  remembered = token;
}

export function readCsrfCookie(cookieHeader: string): string | null {
  for (const part of cookieHeader.split(';')) {
    const separator = part.indexOf('=');
    if (separator < 0) {
      continue;
    }
    if (part.slice(0, separator).trim() === CSRF_COOKIE) {
      const value = decodeURIComponent(part.slice(separator + 1).trim());
      return value === '' ? null : value;
    }
  }
  return null;
}

/** The token to send with a change: the cookie's (it follows the current session), else the remembered one. */
export function currentCsrfToken(): string | null {
  const fromCookie = typeof document === 'undefined' ? null : readCsrfCookie(document.cookie);
  return fromCookie ?? remembered;
}
