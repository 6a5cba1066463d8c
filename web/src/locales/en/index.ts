import common from './common';
import auth from './auth';
import clusters from './clusters';
import users from './users';
import audit from './audit';
import system from './system';
import cluster from './cluster';

export default { ...common, ...auth, ...clusters, ...users, ...audit, ...system, ...cluster };
