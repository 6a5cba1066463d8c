export default {
  system: {
    title: 'HA / system',
    refreshedAt: 'Refreshed every 3 s; last:',
    servedBy: 'Served by replica',
    backend: 'Store',
    backends: {
      raft: 'Embedded Raft group',
      etcd: 'External etcd',
    },
    health: 'Health',
    healthy: 'healthy',
    unhealthy: 'unhealthy',
    healthUnknown: 'not known',
    leader: 'Leader',
    noLeader: 'none',
    term: 'Term',
    revision: 'Revision (applied)',
    version: 'Version',
    auditPolicy: 'Audit policy',
    auditState: 'Audit state',
    members: 'Members',
    memberId: 'Member id',
    thisReplica: 'this replica',
    address: 'Peer address',
    addressHint: 'host:port of the Raft peer listener',
    role: 'Role',
    roles: {
      leader: 'leader',
      follower: 'follower',
      learner: 'learner',
      unknown: 'unknown',
    },
    indexesNote:
      'A replica knows its own term, commit and applied index and revision; the leader knows up to which index each member holds its log (matched). — : not known by the replica that answered.',
    indexes: {
      term: 'Term',
      commit_index: 'Commit',
      applied_index: 'Applied',
      revision: 'Revision',
      matched_index: 'Matched',
    },
    notKnownHere: 'Not known by the replica that answered',
    add: 'Add member',
    addTitle: 'Add a member',
    replace: 'Replace',
    replaceTitle: 'Replace a member',
    remove: 'Remove',
    confirm: {
      addTitle: 'Add member',
      addMessage: 'Add member {id} at {address}? It catches up as a learner, then votes.',
      removeTitle: 'Remove member',
      removeMessage: 'Remove member {id} ({address}) from the group?',
      replaceTitle: 'Replace member',
      replaceMessage: 'Replace member {id} by a fresh one at {address}? Its old data is not used again.',
    },
    warnings: {
      idInUse: 'A member with this id exists already.',
      removingLeader:
        'This member is the leader: the group elects a new one (about a second without writes).',
      removingThisReplica:
        'This member is the replica that serves this page; the page will be served by another one.',
      noFaultTolerance:
        'Fewer than 3 voting members remain: the group no longer survives the loss of a member.',
      quorumAtRisk:
        'Not every other member is healthy: replacing this one may leave the group without a majority.',
    },
  },
};
