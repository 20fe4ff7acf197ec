/**
 * Seeded, deterministic workloads for the benchmarks: a company (IAM users, namespaces,
 * repositories), an access policy with overlapping teams, the permissions SWR holds at the start
 * (exactly what the initial teams give), and event streams (a reorganisation, a join flood,
 * offboardings). Pure: the same sizes and seed always give the same world and events.
 */
import { stringify } from 'yaml';
import type { AuthLevel, PermissionName } from '../lib/domain.ts';
import { AuthLevels } from '../lib/domain.ts';
import { seededRandom } from '../lib/random.ts';

interface WorkloadSizes {
  users: number;
  teams: number;
  repos: number;
  namespaces: number;
  /** Extra IAM users with no team at the start (the join flood). */
  floodUsers: number;
}

interface BenchUser {
  id: string;
  name: string;
}

/** One grant of the generated policy; `repository` absent = the whole namespace. */
interface GeneratedGrant {
  namespace: string;
  repository?: string;
  permission: PermissionName;
}

/** `{ repos: {"ns/repo": {userId: level}}, namespaces: {"ns": {userId: level}} }`, as the simulator reports. */
interface PermissionMap {
  repos: Record<string, Record<string, AuthLevel>>;
  namespaces: Record<string, Record<string, AuthLevel>>;
}

interface BenchWorld {
  /** A simulator seed (validate with `parseSeed`). */
  seed: {
    description: string;
    account: { name: string; id: string };
    project: { name: string; id: string };
    serviceAccount: { id: string; name: string; password: string };
    users: BenchUser[];
    namespaces: Array<{
      name: string;
      grants: Array<{ userId: string; auth: AuthLevel }>;
      repositories: Array<{ name: string; grants: Array<{ userId: string; auth: AuthLevel }> }>;
    }>;
  };
  /** The policy file's text (YAML). */
  policyYaml: string;
  users: BenchUser[];
  floodUsers: BenchUser[];
  /** Never touched by the service; holds grants of its own. */
  robot: BenchUser;
  teams: string[];
  teamGrants: Record<string, GeneratedGrant[]>;
  /** Teams of every population user at the start (the seed's grants follow from them). */
  initialTeams: Map<string, string[]>;
}

/** A people event as a producer would send it (the body of one queue message). */
type BenchEvent =
  | {
      id: string;
      type: 'membership.added' | 'membership.removed';
      team: string;
      occurredAt: string;
      source: string;
      user: BenchUser;
    }
  | { id: string; type: 'user.teams'; teams: string[]; occurredAt: string; source: string; user: BenchUser }
  | { id: string; type: 'user.offboarded'; occurredAt: string; source: string; user: BenchUser };

const pick = <T>(random: () => number, items: readonly T[]): T => {
  if (items.length === 0) throw new RangeError('cannot pick from an empty list');
  return items[Math.floor(random() * items.length)] as T;
};

/** `count` distinct items (fewer when the list is shorter). */
const pickDistinct = <T>(random: () => number, items: readonly T[], count: number): T[] => {
  const pool = [...items];
  const chosen: T[] = [];
  while (chosen.length < count && pool.length > 0)
    chosen.push(pool.splice(Math.floor(random() * pool.length), 1)[0] as T);
  return chosen;
};

const weighted = (
  random: () => number,
  weights: ReadonlyArray<readonly [PermissionName, number]>,
): PermissionName => {
  let roll = random() * weights.reduce((sum, [, weight]) => sum + weight, 0);
  for (const [value, weight] of weights) {
    roll -= weight;
    if (roll < 0) return value;
  }
  return weights[weights.length - 1]?.[0] ?? 'read';
};

/** A 32-hex IAM id whose first character tells the kind of user: readable in a request log. */
const hexId = (prefix: string, index: number): string =>
  `${prefix}${index.toString(16).padStart(32 - prefix.length, '0')}`;

const namespaceNames = ['core', 'data', 'tools', 'web', 'mobile', 'ml', 'infra', 'security'];

const grantKey = (grant: GeneratedGrant): string =>
  grant.repository === undefined ? grant.namespace : `${grant.namespace}/${grant.repository}`;

/**
 * The level every target is desired at for a set of teams: the highest any team gives.
 *
 * @example desiredOf(world, ['team-01', 'team-07']).get('core/svc-3') // 3
 */
const desiredOf = (
  world: Pick<BenchWorld, 'teamGrants'>,
  teams: readonly string[],
): Map<string, AuthLevel> => {
  const levels = new Map<string, AuthLevel>();
  for (const team of teams)
    for (const grant of world.teamGrants[team] ?? []) {
      const key = grantKey(grant);
      const level = AuthLevels[grant.permission];
      if ((levels.get(key) ?? 0) < level) levels.set(key, level);
    }
  return levels;
};

/**
 * Builds the company. Teams overlap on purpose: about a third of each team's grants are on a
 * small set of shared repositories (base images), at levels that differ between teams; a few
 * teams get a whole namespace. Users start in one to three teams.
 *
 * @example const world = generateWorld({ users: 300, teams: 40, repos: 200, namespaces: 5, floodUsers: 0 }, 42);
 */
const generateWorld = (sizes: WorkloadSizes, seed: number): BenchWorld => {
  const random = seededRandom(seed);
  const namespaces = Array.from({ length: sizes.namespaces }, (_, i) => namespaceNames[i] ?? `ns-${i}`);
  const repos = Array.from({ length: sizes.repos }, (_, j) => ({
    namespace: namespaces[j % namespaces.length] as string,
    repository: j % 3 === 0 ? `base/image-${j}` : `svc-${j}`,
  }));
  const shared = repos.slice(0, Math.max(1, Math.ceil(repos.length / 10)));
  const teams = Array.from({ length: sizes.teams }, (_, t) => `team-${String(t).padStart(2, '0')}`);
  const teamGrants: Record<string, GeneratedGrant[]> = {};
  teams.forEach((team, t) => {
    const home = namespaces[t % namespaces.length] as string;
    const homeRepos = repos.filter((repo) => repo.namespace === home);
    const size = 4 + Math.floor(random() * 5);
    const sharedCount = Math.max(1, Math.round(size / 3));
    const chosen = new Map<string, GeneratedGrant>();
    for (const repo of pickDistinct(random, homeRepos, size - sharedCount))
      chosen.set(`${repo.namespace}/${repo.repository}`, {
        ...repo,
        permission: weighted(random, [
          ['read', 40],
          ['write', 45],
          ['manage', 15],
        ]),
      });
    for (const repo of pickDistinct(random, shared, sharedCount))
      chosen.set(`${repo.namespace}/${repo.repository}`, {
        ...repo,
        permission: weighted(random, [
          ['read', 70],
          ['write', 25],
          ['manage', 5],
        ]),
      });
    if (random() < 0.1) chosen.set(home, { namespace: home, permission: 'read' });
    teamGrants[team] = [...chosen.values()];
  });

  const users = Array.from({ length: sizes.users }, (_, i) => ({
    id: hexId('a', i + 1),
    name: `user-${String(i + 1).padStart(4, '0')}`,
  }));
  const floodUsers = Array.from({ length: sizes.floodUsers }, (_, i) => ({
    id: hexId('f', i + 1),
    name: `joiner-${String(i + 1).padStart(5, '0')}`,
  }));
  const robot = { id: hexId('c', 1), name: 'ci-robot' };
  const serviceAccount = { id: hexId('e', 1), name: 'swr-sync', password: 'bench-password' };

  const initialTeams = new Map<string, string[]>();
  for (const user of users) {
    const roll = random();
    const count = roll < 0.1 ? 3 : roll < 0.4 ? 2 : 1;
    initialTeams.set(user.id, pickDistinct(random, teams, count).sort());
  }

  const grantsOn = new Map<string, Array<{ userId: string; auth: AuthLevel }>>();
  const add = (key: string, userId: string, auth: AuthLevel) => {
    const list = grantsOn.get(key) ?? [];
    list.push({ userId, auth });
    grantsOn.set(key, list);
  };
  for (const user of users)
    for (const [key, level] of desiredOf({ teamGrants }, initialTeams.get(user.id) ?? []))
      add(key, user.id, level);
  for (const repo of repos.slice(0, 5))
    add(`${repo.namespace}/${repo.repository}`, robot.id, AuthLevels.manage);

  const policy = {
    version: 1,
    protectedUsers: [robot.id],
    managedNamespaces: namespaces,
    teams: teamGrants,
  };
  return {
    seed: {
      description: `Generated by bench/workload.ts (seed ${seed}).`,
      account: { name: 'bench-corp', id: hexId('b', 1) },
      project: { name: 'eu-west-101', id: hexId('d', 1) },
      serviceAccount,
      users: [...users, ...floodUsers, robot],
      namespaces: namespaces.map((name) => ({
        name,
        grants: grantsOn.get(name) ?? [],
        repositories: repos
          .filter((repo) => repo.namespace === name)
          .map((repo) => ({
            name: repo.repository,
            grants: grantsOn.get(`${name}/${repo.repository}`) ?? [],
          })),
      })),
    },
    policyYaml: `# Generated by bench/workload.ts (seed ${seed}).\n${stringify(policy)}`,
    users,
    floodUsers,
    robot,
    teams,
    teamGrants,
    initialTeams,
  };
};

interface StreamOptions {
  count: number;
  seed: number;
  /** `occurredAt` of the first event (epoch ms); each next one is `stepMs` later. */
  startMs: number;
  stepMs: number;
}

interface Reorganisation {
  events: BenchEvent[];
  /** Teams of every population user once every event is applied (offboarded users: none). */
  finalTeams: Map<string, string[]>;
  offboarded: Set<string>;
}

/**
 * A reorganisation: people move between teams (a leave then a join), join a second team, leave
 * one, get a full snapshot of their teams from the HR system, and a few leave the company.
 * Events of one user are in time order; users are interleaved as in a real queue.
 *
 * @example const { events, finalTeams } = reorganisation(world, { count: 2000, seed: 7, startMs, stepMs: 1000 });
 */
const reorganisation = (world: BenchWorld, options: StreamOptions): Reorganisation => {
  const random = seededRandom(options.seed);
  const teams = new Map([...world.initialTeams].map(([id, list]) => [id, new Set(list)]));
  const offboarded = new Set<string>();
  const events: BenchEvent[] = [];
  const maxOffboarded = Math.max(1, Math.floor(world.users.length * 0.1));
  const next = (user: BenchUser) => ({
    id: `reorg-${options.seed}-${events.length}`,
    occurredAt: new Date(options.startMs + events.length * options.stepMs).toISOString(),
    source: 'bench',
    user,
  });
  const join = (user: BenchUser, current: Set<string>) => {
    const team = pick(
      random,
      world.teams
        .filter((name) => !current.has(name))
        .concat(current.size === world.teams.length ? world.teams : []),
    );
    current.add(team);
    events.push({ ...next(user), type: 'membership.added', team });
  };
  const leave = (user: BenchUser, current: Set<string>) => {
    const team = pick(random, [...current].sort());
    current.delete(team);
    events.push({ ...next(user), type: 'membership.removed', team });
  };
  while (events.length < options.count) {
    const active = world.users.filter((user) => !offboarded.has(user.id));
    const user = pick(random, active);
    const current = teams.get(user.id) ?? new Set<string>();
    teams.set(user.id, current);
    const roll = random();
    if (
      roll < 0.3 &&
      current.size > 0 &&
      current.size < world.teams.length &&
      events.length + 2 <= options.count
    ) {
      // A move: leave one team for another one (never straight back into the team just left).
      const from = pick(random, [...current].sort());
      const to = pick(
        random,
        world.teams.filter((name) => !current.has(name)),
      );
      current.delete(from);
      events.push({ ...next(user), type: 'membership.removed', team: from });
      current.add(to);
      events.push({ ...next(user), type: 'membership.added', team: to });
    } else if (roll < 0.55) join(user, current);
    else if (roll < 0.75 && current.size > 0) leave(user, current);
    else if (roll < 0.97 || offboarded.size >= maxOffboarded || active.length <= 1) {
      const listed = pickDistinct(random, world.teams, 1 + Math.floor(random() * 3)).sort();
      teams.set(user.id, new Set(listed));
      events.push({ ...next(user), type: 'user.teams', teams: listed });
    } else {
      offboarded.add(user.id);
      teams.set(user.id, new Set());
      events.push({ ...next(user), type: 'user.offboarded' });
    }
  }
  return {
    events,
    finalTeams: new Map([...teams].map(([id, set]) => [id, [...set].sort()])),
    offboarded,
  };
};

/**
 * One `user.teams` snapshot per population user, listing the initial teams: it tells the
 * membership store what the seed's grants already reflect (no SWR write should follow).
 */
const warmupEvents = (world: BenchWorld, atMs: number): BenchEvent[] =>
  world.users.map((user) => ({
    id: `warmup-${user.id}`,
    type: 'user.teams' as const,
    teams: world.initialTeams.get(user.id) ?? [],
    occurredAt: new Date(atMs).toISOString(),
    source: 'bench',
    user,
  }));

/** `count` joins of the flood users, round-robin over them, each to a team they are not in yet when possible. */
const joinFlood = (world: BenchWorld, options: StreamOptions): BenchEvent[] => {
  const random = seededRandom(options.seed);
  const joined = new Map<string, Set<string>>();
  return Array.from({ length: options.count }, (_, i) => {
    const user = world.floodUsers[i % world.floodUsers.length] as BenchUser;
    const current = joined.get(user.id) ?? new Set<string>();
    joined.set(user.id, current);
    const open = world.teams.filter((team) => !current.has(team));
    const team = pick(random, open.length > 0 ? open : world.teams);
    current.add(team);
    return {
      id: `flood-${options.seed}-${i}`,
      type: 'membership.added' as const,
      team,
      occurredAt: new Date(options.startMs + i * options.stepMs).toISOString(),
      source: 'bench',
      user,
    };
  });
};

/** @example offboardingOf(user, 'off-1', new Date()) */
const offboardingOf = (user: BenchUser, id: string, at: Date): BenchEvent => ({
  id,
  type: 'user.offboarded',
  occurredAt: at.toISOString(),
  source: 'bench',
  user,
});

/**
 * What SWR should hold when every user has `teamsByUser` (users absent: their initial teams),
 * the robot's own grants included: compare with the simulator's `permissions()`.
 */
const expectedPermissions = (
  world: BenchWorld,
  teamsByUser: ReadonlyMap<string, readonly string[]>,
): PermissionMap => {
  const result: PermissionMap = { repos: {}, namespaces: {} };
  for (const namespace of world.seed.namespaces) {
    result.namespaces[namespace.name] = {};
    for (const repository of namespace.repositories)
      result.repos[`${namespace.name}/${repository.name}`] = {};
  }
  const set = (key: string, userId: string, level: AuthLevel) => {
    const bucket = key.includes('/') ? result.repos : result.namespaces;
    const entry = bucket[key] ?? {};
    entry[userId] = level;
    bucket[key] = entry;
  };
  for (const user of world.users)
    for (const [key, level] of desiredOf(
      world,
      teamsByUser.get(user.id) ?? world.initialTeams.get(user.id) ?? [],
    ))
      set(key, user.id, level);
  for (const namespace of world.seed.namespaces)
    for (const repository of namespace.repositories)
      for (const grant of repository.grants)
        if (grant.userId === world.robot.id)
          set(`${namespace.name}/${repository.name}`, grant.userId, grant.auth);
  return result;
};

/** Every (target, user) whose level differs between two permission maps; the first `limit` described. */
const permissionDifferences = (
  actual: PermissionMap,
  expected: PermissionMap,
  limit = 10,
): { count: number; sample: string[] } => {
  const differences: string[] = [];
  let count = 0;
  for (const kind of ['repos', 'namespaces'] as const) {
    const keys = new Set([...Object.keys(actual[kind]), ...Object.keys(expected[kind])]);
    for (const key of [...keys].sort()) {
      const a = actual[kind][key] ?? {};
      const e = expected[kind][key] ?? {};
      for (const user of new Set([...Object.keys(a), ...Object.keys(e)]))
        if (a[user] !== e[user]) {
          count += 1;
          if (differences.length < limit)
            differences.push(`${key} ${user}: holds ${a[user] ?? 'none'}, expected ${e[user] ?? 'none'}`);
        }
    }
  }
  return { count, sample: differences };
};

export type {
  BenchEvent,
  BenchUser,
  BenchWorld,
  GeneratedGrant,
  PermissionMap,
  Reorganisation,
  StreamOptions,
  WorkloadSizes,
};
export {
  desiredOf,
  expectedPermissions,
  generateWorld,
  joinFlood,
  offboardingOf,
  permissionDifferences,
  reorganisation,
  warmupEvents,
};
