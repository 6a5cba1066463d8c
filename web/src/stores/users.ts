import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import { useApi } from '@/api/instance';
import type { Schemas } from '@/api/client';

export type User = Schemas['UserResponse'];
export type RoleBinding = Schemas['RoleBindingResponse'];

/** Users and role bindings for the administrators' pages. Groups are the users' group names. */
export const useUsersStore = defineStore('users', () => {
  const users = ref<User[]>([]);
  const bindings = ref<RoleBinding[]>([]);
  const loading = ref(false);
  const error = ref<unknown>(null);

  const groups = computed(() => {
    const members = new Map<string, string[]>();
    for (const user of users.value) {
      for (const group of user.groups) {
        members.set(group, [...(members.get(group) ?? []), user.username]);
      }
    }
    return [...members.entries()]
      .map(([name, usernames]) => ({ name, usernames }))
      .sort((a, b) => a.name.localeCompare(b.name));
  });

  async function load(): Promise<void> {
    const api = useApi();
    loading.value = true;
    try {
      const [userList, bindingList] = await Promise.all([
        api.call(api.raw.GET('/kuboard-api/users')),
        api.call(api.raw.GET('/kuboard-api/role-bindings')),
      ]);
      users.value = [...userList].sort((a, b) => a.username.localeCompare(b.username));
      bindings.value = bindingList;
      error.value = null;
    } catch (failure) {
      error.value = failure;
    } finally {
      loading.value = false;
    }
  }

  async function create(body: Schemas['CreateUserRequest']): Promise<void> {
    const api = useApi();
    await api.call(api.raw.POST('/kuboard-api/users', { body }));
    await load();
  }

  async function update(username: string, body: Schemas['UpdateUserRequest']): Promise<void> {
    const api = useApi();
    const updated = await api.call(
      api.raw.PATCH('/kuboard-api/users/{username}', { params: { path: { username } }, body }),
    );
    users.value = users.value.map((user) => (user.username === username ? updated : user));
  }

  async function setDisabled(username: string, disabled: boolean): Promise<void> {
    await update(username, { disabled });
  }

  async function resetPassword(username: string, password: string) {
    const api = useApi();
    const answer = await api.call(
      api.raw.POST('/kuboard-api/users/{username}/password', {
        params: { path: { username } },
        body: { password },
      }),
    );
    users.value = users.value.map((user) =>
      user.username === username ? { ...user, must_change_password: answer.must_change_password } : user,
    );
    return answer;
  }

  async function remove(username: string): Promise<void> {
    const api = useApi();
    await api.call(api.raw.DELETE('/kuboard-api/users/{username}', { params: { path: { username } } }));
    users.value = users.value.filter((user) => user.username !== username);
  }

  async function createBinding(body: Schemas['CreateRoleBindingRequest']): Promise<void> {
    const api = useApi();
    const created = await api.call(api.raw.POST('/kuboard-api/role-bindings', { body }));
    bindings.value = [...bindings.value, created];
  }

  async function removeBinding(id: string): Promise<void> {
    const api = useApi();
    await api.call(api.raw.DELETE('/kuboard-api/role-bindings/{id}', { params: { path: { id } } }));
    bindings.value = bindings.value.filter((binding) => binding.id !== id);
  }

  return {
    users,
    bindings,
    groups,
    loading,
    error,
    load,
    create,
    update,
    setDisabled,
    resetPassword,
    remove,
    createBinding,
    removeBinding,
  };
});
