/**
 * An in-memory SwrPermissionsPort for unit tests: keeps permissions per target, records every
 * call, can fail a target's writes with a given error, can hold calls open for a few ms to
 * measure concurrency, and can run a hook before each write (e.g. to advance a fake clock).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { CallOptions, SwrPermissionsPort, Target, TargetAccess, UserAuth } from '../../lib/domain.ts';
import { targetKey } from '../../lib/domain.ts';
import type { SyncError } from '../../lib/errors.ts';
import { userId } from './factories.ts';

interface RecordedCall {
  method: 'grant' | 'change' | 'revoke';
  target: string;
  users: UserAuth[] | string[];
  options: CallOptions | undefined;
}

class FakeSwr implements SwrPermissionsPort {
  readonly calls: RecordedCall[] = [];
  readonly failures = new Map<string, SyncError | Error>();
  readonly state = new Map<string, Map<string, UserAuth>>();
  selfUserId: string | undefined;
  delayMs = 0;
  beforeWrite: (() => void) | undefined;
  inFlight = 0;
  maxInFlight = 0;
  /** Most calls ever in flight on one target at once. */
  maxInFlightPerTarget = 0;
  private readonly inFlightByTarget = new Map<string, number>();

  /** Puts a grant of test user `n` on `key` as if someone made it by hand (no call recorded). */
  hold(key: string, n: number, auth: 1 | 3 | 7 = 3): this {
    const users = this.state.get(key) ?? new Map<string, UserAuth>();
    users.set(userId(n), { user_id: userId(n), user_name: `user${n}`, auth });
    this.state.set(key, users);
    return this;
  }

  /** Whether test user `n` holds anything on `key`. */
  holds(key: string, n: number): boolean {
    return this.state.get(key)?.has(userId(n)) ?? false;
  }

  /** Makes every write on `target` (a `targetKey`) throw `error`. */
  failTarget(target: string, error: SyncError | Error): this {
    this.failures.set(target, error);
    return this;
  }

  async getAccess(target: Target): Promise<TargetAccess> {
    return { selfUserId: this.selfUserId, users: [...(this.state.get(targetKey(target))?.values() ?? [])] };
  }

  async grant(target: Target, users: UserAuth[], options?: CallOptions): Promise<void> {
    await this.write('grant', target, users, options, (perms) => {
      for (const user of users) perms.set(user.user_id, user);
    });
  }

  async change(target: Target, users: UserAuth[], options?: CallOptions): Promise<void> {
    await this.write('change', target, users, options, (perms) => {
      for (const user of users) perms.set(user.user_id, user);
    });
  }

  async revoke(target: Target, userIds: string[], options?: CallOptions): Promise<void> {
    await this.write('revoke', target, userIds, options, (perms) => {
      for (const id of userIds) perms.delete(id);
    });
  }

  async listRepositories(namespace: string): Promise<string[]> {
    return [...this.state.keys()]
      .filter((key) => key.startsWith(`${namespace}/`))
      .map((key) => key.slice(namespace.length + 1));
  }

  private async write(
    method: RecordedCall['method'],
    target: Target,
    users: UserAuth[] | string[],
    options: CallOptions | undefined,
    apply: (perms: Map<string, UserAuth>) => void,
  ): Promise<void> {
    const key = targetKey(target);
    this.beforeWrite?.();
    this.calls.push({ method, target: key, users, options });
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const onTarget = (this.inFlightByTarget.get(key) ?? 0) + 1;
    this.inFlightByTarget.set(key, onTarget);
    this.maxInFlightPerTarget = Math.max(this.maxInFlightPerTarget, onTarget);
    try {
      if (this.delayMs > 0) await sleep(this.delayMs);
      const failure = this.failures.get(key);
      if (failure !== undefined) throw failure;
      const perms = this.state.get(key) ?? new Map<string, UserAuth>();
      apply(perms);
      this.state.set(key, perms);
    } finally {
      this.inFlight -= 1;
      this.inFlightByTarget.set(key, (this.inFlightByTarget.get(key) ?? 1) - 1);
    }
  }
}

export type { RecordedCall };
export { FakeSwr };
