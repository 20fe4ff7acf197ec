/**
 * 6. The intake, on the local stack with its HTTP front (the API Gateway stand-in):
 * - SCIM latency: `--scim-requests` PATCH /Groups requests in flight at once, each adding one
 *   member (Entra's documented body), timed at the client; the baseline is a minimal handler that
 *   answers 204 behind the same server, so the figure is what our handler adds.
 * - Okta deactivate → last revoke: `--offboardings` deactivations delivered as Okta event hooks,
 *   `--offboard-interval-ms` apart, from just before the POST to the audit record of the user's last
 *   revoke; the baseline is our own `user.offboarded` event sent straight to the offboarding queue
 *   for other users of the same teams, interleaved with the hooks in the same run.
 * Every offboarded user must end with nothing (`leftovers`, must be 0).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { IamUser } from '../../lib/domain.ts';
import { startLocalIntake } from '../../lib/local/intake.ts';
import { startIntakeServer } from '../../lib/local/intake-server.ts';
import { localCredentials, localRegion } from '../../lib/local/sqs.ts';
import { startLocalStack } from '../../lib/local/stack.ts';
import { createMemoryTelemetry } from '../../lib/observability.ts';
import { loadSeed } from '../../lib/sim/index.ts';
import type { BenchOptions } from '../args.ts';
import { summarize } from '../stats.ts';
import type { ResultRow } from '../table.ts';
import { filteringLog, progress, type ScenarioResult } from './common.ts';

const drainTimeoutMs = 10 * 60 * 1000;

const benchUser = (n: number): IamUser => ({
  id: `be0c${n.toString(16).padStart(28, '0')}`,
  name: `bench${n}`,
});

const policyYaml = [
  'version: 1',
  'managedNamespaces: [core, tools]',
  'identity: { iamName: userName }',
  'teams:',
  '  bench:',
  '    idpGroups: ["Bench Engineers"]',
  '    grants:',
  '      - { namespace: core, repository: api/server, permission: write }',
  '      - { namespace: core, repository: base/node, permission: read }',
  '      - { namespace: tools, permission: read }',
].join('\n');

const timed = async <T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> => {
  const startedAt = performance.now();
  const value = await work();
  return { ms: performance.now() - startedAt, value };
};

/** Adds one member per request, all requests in flight at once; per-request latencies. */
const concurrentPatches = async (
  url: string,
  token: string,
  groupId: string,
  memberIds: readonly string[],
): Promise<{ latencies: number[]; statuses: number[] }> => {
  const results = await Promise.all(
    memberIds.map((memberId) =>
      timed(async () => {
        const response = await fetch(`${url}/scim/v2/Groups/${groupId}`, {
          method: 'PATCH',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' },
          body: JSON.stringify({
            schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
            Operations: [{ op: 'Add', path: 'members', value: [{ $ref: null, value: memberId }] }],
          }),
        });
        await response.arrayBuffer();
        return response.status;
      }),
    ),
  );
  return { latencies: results.map((result) => result.ms), statuses: results.map((result) => result.value) };
};

/**
 * @example const { rows } = await runIntakeScenario(options);
 */
const runIntakeScenario = async (options: BenchOptions): Promise<ScenarioResult> => {
  const requests = options.sizes.scimRequests;
  const offboardings = options.sizes.offboardings;
  const patchUsers = Array.from({ length: requests }, (_, index) => benchUser(index + 1));
  const hookVictims = Array.from({ length: offboardings }, (_, index) => benchUser(requests + index + 1));
  const directVictims = Array.from({ length: offboardings }, (_, index) =>
    benchUser(requests + offboardings + index + 1),
  );
  const seed = loadSeed();
  const dir = mkdtempSync(join(tmpdir(), 'swr-bench-intake-'));
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, policyYaml);
  const tracked = new Set([...hookVictims, ...directVictims].map((user) => user.id));
  const lastRevoke = new Map<string, number>();
  const log = filteringLog((message, attributes) => {
    if (message !== 'access changed' || attributes.after !== 'none') return;
    const userId = String(attributes.userId);
    if (!tracked.has(userId)) return;
    lastRevoke.set(userId, Math.max(lastRevoke.get(userId) ?? 0, Date.parse(String(attributes.at))));
  });
  const stack = await startLocalStack({
    seed: { ...seed, users: [...seed.users, ...patchUsers, ...hookVictims, ...directVictims] },
    policyFile,
    latencyMs: options.sizes.latencyMs,
    log,
    env: { SWR_MAX_CONCURRENCY: String(options.sizes.concurrency) },
  });
  const baseline = await startIntakeServer({
    handler: async () => ({ statusCode: 204 }),
    credentials: localCredentials,
    region: localRegion,
  });
  try {
    const intake = await startLocalIntake(stack, { log, metrics: createMemoryTelemetry().metrics });
    try {
      const scim = async (method: string, path: string, body: unknown) => {
        const response = await fetch(`${intake.url}/scim/v2${path}`, {
          method,
          headers: { authorization: `Bearer ${intake.scimToken}`, 'content-type': 'application/scim+json' },
          body: JSON.stringify(body),
        });
        return (await response.json()) as { id: string };
      };
      progress(`intake: ${requests} SCIM users and a group`);
      const scimIds: string[] = [];
      for (const user of patchUsers)
        scimIds.push(
          (
            await scim('POST', '/Users', {
              schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
              userName: user.name,
            })
          ).id,
        );
      const group = await scim('POST', '/Groups', {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
        displayName: 'Bench Engineers',
      });
      // The baseline server is new: one request first (ours is warm from the POSTs above).
      await concurrentPatches(baseline.url, intake.scimToken, group.id, ['warm']);
      progress(`intake: ${requests} concurrent PATCH, baseline then ours`);
      const base = await concurrentPatches(baseline.url, intake.scimToken, group.id, scimIds);
      const ours = await concurrentPatches(intake.url, intake.scimToken, group.id, scimIds);
      await stack.drain({ timeoutMs: drainTimeoutMs });

      progress(
        `intake: warm-up of ${offboardings * 2} users, then ${offboardings} hook and ${offboardings} direct offboardings`,
      );
      const at = Date.now() - 60 * 60 * 1000;
      await stack.send(
        [...hookVictims, ...directVictims].map((user, index) => ({
          id: `bench-join-${index}`,
          type: 'membership.added',
          occurredAt: new Date(at + index).toISOString(),
          user,
          team: 'bench',
        })),
      );
      await stack.drain({ timeoutMs: drainTimeoutMs });
      const sentAt = new Map<string, number>();
      const hookStatuses: number[] = [];
      for (let index = 0; index < offboardings; index += 1) {
        const viaHook = hookVictims[index] as IamUser;
        const direct = directVictims[index] as IamUser;
        sentAt.set(viaHook.id, Date.now());
        const response = await fetch(`${intake.url}/hooks/okta`, {
          method: 'POST',
          headers: { authorization: intake.oktaHookSecret, 'content-type': 'application/json' },
          body: JSON.stringify({
            data: {
              events: [
                {
                  uuid: randomUUID(),
                  published: new Date().toISOString(),
                  eventType: 'user.lifecycle.deactivate',
                  outcome: { result: 'SUCCESS' },
                  target: [
                    { id: `00u${index}`, type: 'User', alternateId: viaHook.name, displayName: viaHook.name },
                  ],
                },
              ],
            },
          }),
        });
        hookStatuses.push(response.status);
        sentAt.set(direct.id, Date.now());
        await stack.send([
          {
            id: `bench-off-${index}`,
            type: 'user.offboarded',
            occurredAt: new Date().toISOString(),
            user: direct,
          },
        ]);
        await delay(options.sizes.offboardIntervalMs);
      }
      await stack.drain({ timeoutMs: drainTimeoutMs });
      const latencies = (users: readonly IamUser[]) =>
        users.flatMap((user) => {
          const done = lastRevoke.get(user.id);
          const sent = sentAt.get(user.id);
          return done === undefined || sent === undefined ? [] : [done - sent];
        });
      const snapshot = stack.sim.permissions();
      const leftovers = [...tracked].filter((userId) =>
        [...Object.values(snapshot.repos), ...Object.values(snapshot.namespaces)].some(
          (users) => userId in users,
        ),
      ).length;
      const scimOurs = summarize(ours.latencies);
      const scimBase = summarize(base.latencies);
      const hook = summarize(latencies(hookVictims));
      const direct = summarize(latencies(directVictims));
      const scimRow = (metric: string, key: 'p50' | 'p99'): ResultRow => ({
        section: 'intake',
        metric,
        unit: 'ms',
        ours: scimOurs[key],
        baseline: scimBase[key],
        baselineLabel: 'a handler answering 204 behind the same server',
        note: `${requests} PATCH /Groups (add one member each) in flight at once`,
      });
      const hookRow = (metric: string, key: 'p50' | 'p99'): ResultRow => ({
        section: 'intake',
        metric,
        unit: 'ms',
        ours: hook[key],
        baseline: direct[key],
        baselineLabel: 'user.offboarded sent straight to the offboarding queue',
        note: `${offboardings} of each, interleaved, ${options.sizes.latencyMs} ms per SWR call`,
      });
      return {
        rows: [
          scimRow('SCIM PATCH latency p50', 'p50'),
          scimRow('SCIM PATCH latency p99', 'p99'),
          hookRow('Okta deactivate → last revoke p50', 'p50'),
          hookRow('Okta deactivate → last revoke p99', 'p99'),
        ],
        details: {
          scim: { ours: scimOurs, baseline: scimBase, statuses: [...new Set(ours.statuses)] },
          offboarding: { hook, direct, hookStatuses: [...new Set(hookStatuses)], leftovers },
        },
      };
    } finally {
      await intake.close();
    }
  } finally {
    await baseline.close();
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
};

export { runIntakeScenario };
