import { createRouter, createWebHistory, type RouteLocationNormalized, type Router } from 'vue-router';
import { useSessionStore } from '@/stores/session';

declare module 'vue-router' {
  interface RouteMeta {
    /** Reachable without a session. */
    public?: boolean;
    /** Administrators only. */
    administrator?: boolean;
    /** i18n key of the page title. */
    title?: string;
  }
}

export function createConsoleRouter(): Router {
  const router = createRouter({
    history: createWebHistory(),
    routes: [
      {
        path: '/login',
        name: 'login',
        component: () => import('@/views/LoginView.vue'),
        meta: { public: true, title: 'auth.login.title' },
      },
      {
        path: '/',
        component: () => import('@/components/AppShell.vue'),
        children: [
          { path: '', redirect: { name: 'clusters' } },
          {
            path: 'password',
            name: 'password',
            component: () => import('@/views/PasswordView.vue'),
            meta: { title: 'auth.password.title' },
          },
          {
            path: 'access-keys',
            name: 'access-keys',
            component: () => import('@/views/AccessKeysView.vue'),
            meta: { title: 'auth.accessKeys.title' },
          },
          {
            path: 'clusters',
            name: 'clusters',
            component: () => import('@/views/ClustersView.vue'),
            meta: { title: 'clusters.title' },
          },
          {
            path: 'clusters/:name',
            name: 'cluster',
            component: () => import('@/views/ClusterView.vue'),
            props: true,
            meta: { title: 'clusters.workspace.title' },
          },
          {
            // Inside a cluster (`/clusters/:name` itself stays the cluster's connection page).
            path: 'clusters/:name',
            component: () => import('@/views/cluster/ClusterWorkspace.vue'),
            props: true,
            children: [
              {
                path: 'overview',
                name: 'cluster-overview',
                component: () => import('@/views/cluster/ClusterOverview.vue'),
                props: true,
                meta: { title: 'workspace.overview' },
              },
              {
                path: 'resources/:group/:version/:resource',
                name: 'cluster-resources',
                component: () => import('@/views/cluster/ResourceList.vue'),
                props: true,
                meta: { title: 'workspace.kinds' },
              },
              {
                path: 'resources/:group/:version/:resource/create',
                name: 'cluster-resource-create',
                component: () => import('@/views/cluster/ResourceCreate.vue'),
                props: true,
                meta: { title: 'workspace.create.title' },
              },
              {
                path: 'resources/:group/:version/:resource/:namespace/:object/edit',
                name: 'cluster-resource-edit',
                component: () => import('@/views/cluster/ResourceEdit.vue'),
                props: true,
                meta: { title: 'workspace.edit.open' },
              },
              {
                path: 'resources/:group/:version/:resource/:namespace/:object',
                name: 'cluster-resource',
                component: () => import('@/views/cluster/ResourceDetail.vue'),
                props: true,
                meta: { title: 'workspace.kinds' },
              },
              {
                path: 'pods/:namespace/:pod/logs',
                name: 'cluster-pod-logs',
                component: () => import('@/views/cluster/PodLogs.vue'),
                props: true,
                meta: { title: 'workspace.logs.title' },
              },
              {
                path: 'pods/:namespace/:pod/terminal',
                name: 'cluster-pod-terminal',
                component: () => import('@/views/cluster/PodTerminal.vue'),
                props: true,
                meta: { title: 'workspace.terminal.title' },
              },
            ],
          },
          {
            path: 'users',
            name: 'users',
            component: () => import('@/views/UsersView.vue'),
            meta: { administrator: true, title: 'users.title' },
          },
          {
            path: 'audit',
            name: 'audit',
            component: () => import('@/views/AuditView.vue'),
            meta: { administrator: true, title: 'audit.title' },
          },
          {
            path: 'system',
            name: 'system',
            component: () => import('@/views/SystemView.vue'),
            meta: { title: 'system.title' },
          },
          {
            path: ':pathMatch(.*)*',
            name: 'not-found',
            component: () => import('@/views/NotFoundView.vue'),
            meta: { title: 'common.notFound.title' },
          },
        ],
      },
    ],
  });
  router.beforeEach((to) => guard(to));
  return router;
}

/**
 * Starts loading the code of the route's lazy components at once, so that it downloads while the
 * session is checked instead of after (the router loads them only once the guards have passed).
 */
function prefetchComponents(to: RouteLocationNormalized): void {
  for (const record of to.matched) {
    const component = record.components?.default;
    if (typeof component === 'function') {
      void (component as () => Promise<unknown>)().catch(() => undefined);
    }
  }
}

async function guard(to: RouteLocationNormalized) {
  const session = useSessionStore();
  if (!session.checked) {
    prefetchComponents(to);
    try {
      await session.refresh();
    } catch {
      // No replica answered: the page shows its own error state; the login page is the safe place.
      if (!to.meta.public) {
        return { name: 'login', query: { redirect: to.fullPath } };
      }
    }
  }
  if (to.meta.public) {
    return true;
  }
  if (session.me === null) {
    return { name: 'login', query: { redirect: to.fullPath } };
  }
  if (session.mustChangePassword && to.name !== 'password') {
    return { name: 'password', query: { redirect: to.fullPath } };
  }
  if (to.meta.administrator && !session.isAdministrator) {
    return { name: 'clusters' };
  }
  return true;
}

/** Where to go after login or the password change: the `redirect` query when it is a path of the console. */
export function redirectTarget(query: unknown): string {
  if (
    typeof query === 'string' &&
    query.startsWith('/') &&
    !query.startsWith('//') &&
    !query.startsWith('/login')
  ) {
    return query;
  }
  return '/clusters';
}
