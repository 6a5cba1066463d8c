import { createApp } from 'vue';
import { createPinia } from 'pinia';
import App from './App.vue';
import { i18n, currentLanguage } from './i18n';
import { createConsoleRouter } from './router';
import { apiEvents } from './api/instance';
import { useSessionStore } from './stores/session';
import { useConnectionStore } from './stores/connection';
import './styles.css';

const app = createApp(App);
const pinia = createPinia();
app.use(pinia);
app.use(i18n);
const router = createConsoleRouter();
app.use(router);

const session = useSessionStore(pinia);
const connection = useConnectionStore(pinia);
apiEvents.unauthorized = () => {
  // The first session check answers 401 for anyone not logged in yet; the router guard sends them
  // to the login page with the page they asked for.
  if (!session.checked) {
    return;
  }
  session.forget();
  const current = router.currentRoute.value;
  if (current.name !== 'login') {
    void router.push({ name: 'login', query: { redirect: current.fullPath } });
  }
};
apiEvents.passwordChangeRequired = () => {
  const current = router.currentRoute.value;
  if (current.name !== 'password') {
    void router.push({ name: 'password', query: { redirect: current.fullPath } });
  }
};
apiEvents.changeUnreachable = () => connection.changeUnreachable();
apiEvents.reachable = () => connection.reachable();
apiEvents.auditPaused = () => connection.setAuditPaused(true);

document.documentElement.lang = currentLanguage();
app.mount('#app');
