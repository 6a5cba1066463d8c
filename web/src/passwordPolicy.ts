/**
 * The server's password policy, checked as the user types so that problems show next to the field
 * before a request is sent. The server checks again (it also refuses the default password, which
 * the console does not know). Returns the i18n key of the first problem, or null.
 */
export const MIN_PASSWORD_CHARACTERS = 8;
export const MAX_PASSWORD_BYTES = 1024;

export function passwordPolicyProblem(password: string, username: string): string | null {
  if ([...password].length < MIN_PASSWORD_CHARACTERS) {
    return 'auth.password.errors.tooShort';
  }
  if (new TextEncoder().encode(password).length > MAX_PASSWORD_BYTES) {
    return 'auth.password.errors.tooLong';
  }
  if (username !== '' && password.toLowerCase().includes(username.toLowerCase())) {
    return 'auth.password.errors.containsUsername';
  }
  return null;
}
