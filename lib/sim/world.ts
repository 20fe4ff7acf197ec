/**
 * The simulator's state: IAM users, namespaces, repositories and who holds which permission.
 * The service account is implicitly manager of every namespace; it is never stored as a grant,
 * so `snapshot()` shows exactly what other users hold.
 */
import type { AuthLevel, Target } from '../domain.ts';
import { SimulatorUsageError } from './errors.ts';
import { namespaceProblem, repositoryProblem, userIdProblem } from './names.ts';
import { type Failure, failure } from './replies.ts';
import type { SimulatorSeed } from './seed.ts';

interface SimUser {
  id: string;
  name: string;
  enabled: boolean;
}

interface Holding {
  auth: AuthLevel;
  /** As sent in the grant (SWR stores what it is given). */
  userName: string;
}

type Holdings = Map<string, Holding>;

interface RepositoryRecord {
  id: number;
  namespace: string;
  name: string;
  category: string;
  description: string;
  createdAt: string;
  grants: Holdings;
}

interface NamespaceRecord {
  id: number;
  name: string;
  grants: Holdings;
  repositories: Map<string, RepositoryRecord>;
}

/** `{ repos: {"ns/repo": {userId: auth}}, namespaces: {"ns": {userId: auth}} }` */
interface PermissionsSnapshot {
  repos: Record<string, Record<string, AuthLevel>>;
  namespaces: Record<string, Record<string, AuthLevel>>;
}

const NotFound = {
  namespace: (name: string): Failure => failure(404, 'SVCSTG.SWR.4040058', `namespace ${name} not found`),
  repository: (namespace: string, name: string): Failure =>
    failure(404, 'SVCSTG.SWR.4040010', `repository ${namespace}/${name} not found`),
} as const;

class World {
  readonly seed: SimulatorSeed;
  readonly users = new Map<string, SimUser>();
  readonly namespaces = new Map<string, NamespaceRecord>();
  readonly #now: () => number;
  #nextId = 1000;

  constructor(seed: SimulatorSeed, now: () => number) {
    this.seed = seed;
    this.#now = now;
    const sa = seed.serviceAccount;
    this.users.set(sa.id, { id: sa.id, name: sa.name, enabled: true });
    for (const user of seed.users)
      this.users.set(user.id, { id: user.id, name: user.name, enabled: user.enabled ?? true });
    for (const namespace of seed.namespaces) {
      const ns = this.#ensureNamespace(namespace.name);
      for (const grant of namespace.grants ?? []) ns.grants.set(grant.userId, this.#holding(grant));
      for (const repository of namespace.repositories) {
        const repo = this.#ensureRepository(ns, repository.name, repository.category, repository.description);
        for (const grant of repository.grants ?? []) repo.grants.set(grant.userId, this.#holding(grant));
      }
    }
  }

  get serviceAccountId(): string {
    return this.seed.serviceAccount.id;
  }

  /** Every IAM user with exactly this name: IAM names are unique per account only by convention. */
  usersByName(name: string): SimUser[] {
    return [...this.users.values()].filter((user) => user.name === name);
  }

  /**
   * A new IAM user (a generated id unless given). Another user may already carry the name: real
   * accounts end up there through federation and re-created users, and clients must notice.
   */
  addUser(user: { name: string; id?: string; enabled?: boolean }): SimUser {
    const id = user.id ?? this.#newUserId();
    if (userIdProblem(id) !== undefined) throw new SimulatorUsageError(`not an IAM user id: ${id}`);
    if (this.users.has(id)) throw new SimulatorUsageError(`IAM user ${id} exists already`);
    if (user.name === '') throw new SimulatorUsageError('an IAM user needs a name');
    const created = { id, name: user.name, enabled: user.enabled ?? true };
    this.users.set(id, created);
    return created;
  }

  /** The user leaves IAM; the SWR grants it held stay (as when someone deletes a user in the console). */
  deleteUser(id: string): void {
    if (id === this.serviceAccountId) throw new SimulatorUsageError('the service account cannot be deleted');
    if (!this.users.delete(id)) throw new SimulatorUsageError(`IAM has no user ${id}`);
  }

  /** IAM's name changes; grants keep the name they were given (SWR stores what it was sent). */
  renameUser(id: string, name: string): void {
    const user = this.users.get(id);
    if (user === undefined) throw new SimulatorUsageError(`IAM has no user ${id}`);
    if (name === '') throw new SimulatorUsageError('an IAM user needs a name');
    user.name = name;
  }

  /** The grants held on a target, or the 404 SWR answers for it. */
  holdings(target: Target): Holdings | Failure {
    const ns = this.namespaces.get(target.namespace);
    if (ns === undefined) return NotFound.namespace(target.namespace);
    if (target.kind === 'namespace') return ns.grants;
    const repo = ns.repositories.get(target.repository);
    return repo === undefined ? NotFound.repository(target.namespace, target.repository) : repo.grants;
  }

  /** The record a GET answers about (for its `id` and `name`). */
  record(target: Target): NamespaceRecord | RepositoryRecord | undefined {
    const ns = this.namespaces.get(target.namespace);
    return target.kind === 'namespace' ? ns : ns?.repositories.get(target.repository);
  }

  /** The caller's effective level on a target: the higher of its namespace and repository grants. */
  levelOf(userId: string, target: Target): AuthLevel | 0 {
    if (userId === this.serviceAccountId) return 7;
    const ns = this.namespaces.get(target.namespace);
    const nsLevel = ns?.grants.get(userId)?.auth ?? 0;
    const repoLevel =
      target.kind === 'repo' ? (ns?.repositories.get(target.repository)?.grants.get(userId)?.auth ?? 0) : 0;
    return Math.max(nsLevel, repoLevel) as AuthLevel | 0;
  }

  addRepository(namespace: string, repository: string): void {
    const broken = namespaceProblem(namespace) ?? repositoryProblem(repository);
    if (broken !== undefined)
      throw new SimulatorUsageError(`cannot add ${namespace}/${repository}: ${broken}`);
    this.#ensureRepository(this.#ensureNamespace(namespace), repository);
  }

  setPermission(target: Target, userId: string, auth: AuthLevel | undefined): void {
    if (userIdProblem(userId) !== undefined) throw new SimulatorUsageError(`not an IAM user id: ${userId}`);
    if (userId === this.serviceAccountId)
      throw new SimulatorUsageError('the service account is implicitly manager everywhere');
    const holdings = this.holdings(target);
    if (holdings instanceof Map) {
      if (auth === undefined) holdings.delete(userId);
      // A user IAM no longer knows may still hold a grant (drift); it then shows its id as name.
      else holdings.set(userId, { auth, userName: this.users.get(userId)?.name ?? userId });
      return;
    }
    throw new SimulatorUsageError(holdings.message);
  }

  /** Copies every grant; the returned function puts them back (a write that must not have happened). */
  backup(): () => void {
    const saved = [...this.namespaces.values()].map((ns) => ({
      ns,
      grants: new Map(ns.grants),
      repositories: [...ns.repositories.values()].map((repo) => ({ repo, grants: new Map(repo.grants) })),
    }));
    return () => {
      for (const { ns, grants, repositories } of saved) {
        ns.grants = grants;
        for (const { repo, grants: repoGrants } of repositories) repo.grants = repoGrants;
      }
    };
  }

  snapshot(): PermissionsSnapshot {
    const levels = (holdings: Holdings) =>
      Object.fromEntries([...holdings].sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, h]) => [id, h.auth]));
    const snapshot: PermissionsSnapshot = { repos: {}, namespaces: {} };
    for (const ns of this.namespaces.values()) {
      snapshot.namespaces[ns.name] = levels(ns.grants);
      for (const repo of ns.repositories.values())
        snapshot.repos[`${ns.name}/${repo.name}`] = levels(repo.grants);
    }
    return snapshot;
  }

  #newUserId(): string {
    for (;;) {
      const id = Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join('');
      if (!this.users.has(id)) return id;
    }
  }

  #holding(grant: { userId: string; auth: AuthLevel }): Holding {
    return { auth: grant.auth, userName: this.users.get(grant.userId)?.name ?? grant.userId };
  }

  #ensureNamespace(name: string): NamespaceRecord {
    let ns = this.namespaces.get(name);
    if (ns === undefined) {
      ns = { id: this.#nextId++, name, grants: new Map(), repositories: new Map() };
      this.namespaces.set(name, ns);
    }
    return ns;
  }

  #ensureRepository(
    ns: NamespaceRecord,
    name: string,
    category = 'other',
    description = '',
  ): RepositoryRecord {
    let repo = ns.repositories.get(name);
    if (repo === undefined) {
      repo = {
        id: this.#nextId++,
        namespace: ns.name,
        name,
        category,
        description,
        createdAt: new Date(this.#now()).toISOString(),
        grants: new Map(),
      };
      ns.repositories.set(name, repo);
    }
    return repo;
  }
}

export type { Holding, Holdings, NamespaceRecord, PermissionsSnapshot, RepositoryRecord, SimUser };
export { World };
