export default {
  common: {
    productName: 'Kuboard',
    retry: 'Retry',
    empty: 'Nothing here yet',
    cancel: 'Cancel',
    confirm: 'Confirm',
    create: 'Create',
    save: 'Save',
    edit: 'Edit',
    delete: 'Delete',
    close: 'Close',
    copy: 'Copy',
    copied: 'Copied',
    dismiss: 'Dismiss',
    search: 'Search',
    reset: 'Reset',
    next: 'Next',
    actions: 'Actions',
    createdAt: 'Created',
    updatedAt: 'Updated',
    error: {
      unreachable: 'No Kuboard replica answered. Check the network or the load balancer, then try again.',
      requestId: 'Request id:',
    },
    banner: {
      auditPaused:
        'Changes are paused: the audit policy is strict and the audit database does not accept events. Reading still works.',
      reconnecting:
        'Reconnecting: your last change got no answer and was not retried. What you typed is kept; send it again once Kuboard answers.',
    },
    notFound: {
      title: 'Page not found',
      explain: 'There is no page at this address.',
      back: 'Back to clusters',
    },
  },
  nav: {
    label: 'Main navigation',
    clusters: 'Clusters',
    users: 'Users & roles',
    audit: 'Audit log',
    system: 'HA / system',
    accessKeys: 'My access keys',
    userMenu: 'User menu',
    changePassword: 'Change password',
    logout: 'Log out',
  },
  language: {
    label: 'Language',
    zhCN: '中文',
    en: 'English',
  },
};
