import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import { useApi } from '@/api/instance';
import type { Schemas } from '@/api/client';
import { rememberCsrfToken } from '@/api/csrf';
import { isApiError } from '@/api/errors';

export type Me = Schemas['MeResponse'];

/** Who is logged in. The session itself is the HttpOnly cookie; nothing here is persisted. */
export const useSessionStore = defineStore('session', () => {
  const me = ref<Me | null>(null);
  /** True once `auth/me` answered (with a user or with 401). */
  const checked = ref(false);

  const isAdministrator = computed(() => me.value?.role === 'administrator');
  const mustChangePassword = computed(() => me.value?.must_change_password === true);

  async function refresh(): Promise<Me | null> {
    const api = useApi();
    try {
      me.value = await api.call(api.raw.GET('/kuboard-api/auth/me'));
    } catch (error) {
      if (isApiError(error) && error.status === 401) {
        me.value = null;
      } else {
        throw error;
      }
    } finally {
      checked.value = true;
    }
    return me.value;
  }

  async function login(username: string, password: string, remember: boolean) {
    const api = useApi();
    const answer = await api.call(
      api.raw.POST('/kuboard-api/auth/login', { body: { username, password, remember } }),
    );
    rememberCsrfToken(answer.csrf_token);
    await refresh();
    return answer;
  }

  async function changePassword(currentPassword: string, newPassword: string) {
    const api = useApi();
    const answer = await api.call(
      api.raw.POST('/kuboard-api/auth/password', {
        body: { current_password: currentPassword, new_password: newPassword },
      }),
    );
    if (me.value !== null) {
      me.value = { ...me.value, must_change_password: answer.must_change_password };
    }
    return answer;
  }

  async function logout(): Promise<void> {
    const api = useApi();
    try {
      await api.call(api.raw.POST('/kuboard-api/auth/logout'));
    } finally {
      forget();
    }
  }

  /** Drops what the console knows of the session (after logout or a 401). */
  function forget(): void {
    me.value = null;
    rememberCsrfToken(null);
  }

  return { me, checked, isAdministrator, mustChangePassword, refresh, login, changePassword, logout, forget };
});
