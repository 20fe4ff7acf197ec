/**
 * The bad-input corpus (test/corpus/*.json, one case per file): every message case goes through
 * the real pipeline (`processRecords`, the undici client against the simulator, a memory store,
 * a capturing DLQ) between two good messages that must still be applied; every policy case must
 * fail the start with a ConfigError naming the file, the YAML path and the rule. Nothing with an
 * invalid name may ever reach the simulator.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { loadPolicyFile } from '../../lib/core/policy.ts';
import { parsePolicy } from '../../lib/core/policy-yaml.ts';
import type { DeadLetter, DeadLetterSender } from '../../lib/dlq.ts';
import type { PeopleEvent, Policy } from '../../lib/domain.ts';
import { ConfigError } from '../../lib/errors.ts';
import { simulatorServices } from '../../lib/local/sim-services.ts';
import { createMemoryTelemetry } from '../../lib/observability.ts';
import { type BatchReport, type PipelineRecord, processRecords } from '../../lib/pipeline.ts';
import { type Simulator, startSimulator } from '../../lib/sim/index.ts';
import { createMemoryStore } from '../../lib/store/index.ts';
import type { SwrServices } from '../../lib/swr/index.ts';
import { namespaceRule, repositoryRule, userIdRule, userNameRule } from '../../lib/swr/names.ts';

const corpusDir = 'test/corpus';
const padMarker = '@@PAD@@';

const expectSchema = z.strictObject({
  outcome: z.enum(['dlq', 'ignored-with-warning', 'applied', 'startup-error']),
  errorCode: z.string().optional(),
  reasonIncludes: z.union([z.string(), z.array(z.string())]).optional(),
});

/** A case file; `padTo` (bytes) grows a body through its `@@PAD@@` marker, so huge cases stay small on disk. */
const caseSchema = z
  .strictObject({
    name: z.string().min(1),
    body: z.string().optional(),
    bodyBase64: z.base64().optional(),
    padTo: z.number().int().positive().optional(),
    policy: z.string().optional(),
    expect: expectSchema,
  })
  .refine((c) => [c.body, c.bodyBase64, c.policy].filter((v) => v !== undefined).length === 1, {
    error: 'exactly one of body, bodyBase64 and policy',
  })
  .refine((c) => (c.policy !== undefined) === (c.expect.outcome === 'startup-error'), {
    error: 'policy cases, and only they, expect startup-error',
  });

type CorpusCase = z.infer<typeof caseSchema> & { file: string };

const loadCases = (): CorpusCase[] =>
  readdirSync(corpusDir)
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => {
      const parsed = caseSchema.safeParse(JSON.parse(readFileSync(join(corpusDir, file), 'utf8')));
      if (!parsed.success) throw new Error(`${file}: ${z.prettifyError(parsed.error)}`);
      return { ...parsed.data, file };
    });

const bodyOf = (c: CorpusCase): string => {
  const body =
    c.bodyBase64 === undefined ? (c.body ?? '') : Buffer.from(c.bodyBase64, 'base64').toString('utf8');
  if (c.padTo === undefined) return body;
  const missing = Math.max(0, c.padTo - Buffer.byteLength(body.replace(padMarker, ''), 'utf8'));
  return body.replace(padMarker, 'x'.repeat(missing));
};

const reasonsOf = (c: CorpusCase): string[] =>
  c.expect.reasonIncludes === undefined
    ? []
    : typeof c.expect.reasonIncludes === 'string'
      ? [c.expect.reasonIncludes]
      : c.expect.reasonIncludes;

const cases = loadCases();
const messageCases = cases.filter((c) => c.policy === undefined);
const policyCases = cases.filter((c) => c.policy !== undefined);

const alice = { id: 'a11ce000000000000000000000000001', name: 'alice' };
const bob = { id: 'b0b00000000000000000000000000002', name: 'bob' };

/** Alice joins (even case) or leaves (odd case) backend; bob the other way round, one minute later. */
const goodEvents = (index: number): [PeopleEvent, PeopleEvent] => {
  const at = (minutes: number) =>
    new Date(Date.parse('2026-03-02T00:00:00Z') + minutes * 60_000).toISOString();
  const common = (user: typeof alice, minutes: number, join: boolean, tag: string): PeopleEvent =>
    join
      ? {
          id: `good-${tag}-${index}`,
          type: 'membership.added',
          occurredAt: at(minutes),
          user,
          team: 'backend',
        }
      : {
          id: `good-${tag}-${index}`,
          type: 'membership.removed',
          occurredAt: at(minutes),
          user,
          team: 'backend',
        };
  return [common(alice, index * 2, index % 2 === 0, 'a'), common(bob, index * 2 + 1, index % 2 === 1, 'b')];
};

const recordOf = (messageId: string, body: string, groupId: string | undefined): PipelineRecord => ({
  messageId,
  body,
  groupId,
  receiveCount: 1,
});

/** A DLQ that keeps what it is given. */
const capturingDeadLetters = () => {
  const letters: DeadLetter[] = [];
  const sender: DeadLetterSender = {
    async send(batch) {
      letters.push(...batch);
      return { sent: batch.map((letter) => letter.messageId), failed: [] };
    },
  };
  return { letters, sender };
};

/** The rule a simulator request path breaks, if any (names as the client must have checked them). */
const invalidNameIn = (path: string): string | undefined => {
  const url = new URL(path, 'http://sim.invalid');
  const segments = url.pathname.split('/').map((segment) => decodeURIComponent(segment));
  const problems: Array<string | undefined> = [];
  const repoAccess = /^\/v2\/manage\/namespaces\/([^/]+)\/repos\/([^/]+)\/access$/.exec(url.pathname);
  const namespaceAccess = /^\/v2\/manage\/namespaces\/([^/]+)\/access$/.exec(url.pathname);
  if (repoAccess !== null) {
    problems.push(namespaceRule(decodeURIComponent(repoAccess[1] ?? '')));
    const encoded = repoAccess[2] ?? '';
    if (encoded.includes('/') || encoded.includes('%')) problems.push('repository not sent with $ for /');
    problems.push(repositoryRule(encoded.replaceAll('$', '/')));
  } else if (namespaceAccess !== null)
    problems.push(namespaceRule(decodeURIComponent(namespaceAccess[1] ?? '')));
  else if (url.pathname.startsWith('/v3/users/')) problems.push(userIdRule(segments[3]));
  else if (url.pathname === '/v3/users') {
    const name = url.searchParams.get('name');
    if (name !== null) problems.push(userNameRule(name));
  } else if (url.pathname.startsWith('/v2/manage/repos') || url.pathname.startsWith('/v3/manage/repos')) {
    const namespace = url.searchParams.get('namespace');
    if (namespace !== null) problems.push(namespaceRule(namespace));
  } else if (url.pathname !== '/v3/auth/tokens') problems.push(`unexpected route ${url.pathname}`);
  const broken = problems.find((problem) => problem !== undefined);
  return broken === undefined ? undefined : `${path}: ${broken}`;
};

let sim: Simulator;
let services: SwrServices;
let policy: Policy;
const store = createMemoryStore();
const telemetry = createMemoryTelemetry();
const dlq = capturingDeadLetters();

beforeAll(async () => {
  sim = await startSimulator();
  services = simulatorServices(sim, { retry: { baseDelayMs: 5, maxDelayMs: 20 } });
  policy = await loadPolicyFile('config/demo-policy.yaml');
});

afterAll(async () => {
  await services?.close();
  await sim?.close();
});

const runBatch = async (c: CorpusCase, index: number): Promise<{ report: BatchReport; ids: string[] }> => {
  const [before, after] = goodEvents(index);
  const body = bodyOf(c);
  const ids = [`m-before-${index}`, `m-case-${index}`, `m-after-${index}`];
  const records = [
    recordOf(ids[0] as string, JSON.stringify(before), alice.id),
    recordOf(ids[1] as string, body, `case-${index}`),
    recordOf(ids[2] as string, JSON.stringify(after), bob.id),
  ];
  const report = await processRecords(
    records,
    {
      swr: services.swr,
      directory: services.users,
      store,
      policy,
      deadLetters: dlq.sender,
      log: telemetry.log,
      metrics: telemetry.metrics,
      now: () => new Date(),
    },
    { actor: 'corpus', concurrency: 4, dryRun: false },
    Date.now() + 30_000,
  );
  return { report, ids };
};

describe('the bad-input corpus', () => {
  it('holds at least 50 cases, each kind of outcome among them', () => {
    // Assess
    expect(cases.length).toBeGreaterThanOrEqual(50);
    expect(new Set(cases.map((c) => c.expect.outcome))).toEqual(
      new Set(['dlq', 'ignored-with-warning', 'applied', 'startup-error']),
    );
  });

  describe.each(messageCases.map((c, index) => ({ ...c, index })))('message $name', (c) => {
    it(`ends ${c.expect.outcome} without failing its batch`, async () => {
      // Prepare
      const linesBefore = telemetry.lines.length;

      // Act
      const { report, ids } = await runBatch(c, c.index);

      // Assess
      const [beforeId, caseId, afterId] = ids as [string, string, string];
      expect(report.applied).toEqual(expect.arrayContaining([beforeId, afterId]));
      expect(report.retried).toEqual([]);
      expect(report.undeliverable).toEqual([]);
      const aliceJoined = c.index % 2 === 0;
      const server = sim.permissions().repos['core/api/server'] ?? {};
      expect(server[alice.id]).toBe(aliceJoined ? 3 : undefined);
      expect(server[bob.id]).toBe(aliceJoined ? undefined : 3);

      const failure = report.deadLettered.find((entry) => entry.messageId === caseId);
      const lines = telemetry.lines.slice(linesBefore);
      if (c.expect.outcome === 'dlq') {
        expect(failure?.error.code).toBe(c.expect.errorCode);
        expect(dlq.letters.some((letter) => letter.messageId === caseId)).toBe(true);
        for (const reason of reasonsOf(c)) expect(failure?.error.message).toContain(reason);
        // The reason names the problem; it never carries a huge body back into the DLQ attributes.
        expect(failure?.error.message.length).toBeLessThanOrEqual(1000);
      } else {
        expect(failure).toBeUndefined();
        expect(report.applied).toContain(caseId);
        const warnings = lines.filter((line) => line.level === 'WARN').map((line) => line.message);
        if (c.expect.outcome === 'ignored-with-warning')
          for (const reason of reasonsOf(c)) expect(warnings.join('\n')).toContain(reason);
        else expect(warnings).toEqual([]);
      }
    });
  });

  it('never let a request with an invalid name reach the simulator', () => {
    // Act
    const log = sim.requestLog();

    // Assess
    expect(log.length).toBeGreaterThan(0);
    expect(log.map((entry) => invalidNameIn(entry.path)).filter((problem) => problem !== undefined)).toEqual(
      [],
    );
  });
});

describe('the bad-policy corpus', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'swr-corpus-'));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe.each(policyCases)('policy $name', (c) => {
    it('fails the start with a ConfigError naming the file, the YAML path and the rule', async () => {
      // Prepare
      const file = join(dir, `${c.name}.yaml`);
      writeFileSync(file, c.policy ?? '');

      // Act
      const loaded = loadPolicyFile(file).then(
        () => undefined,
        (error: unknown) => error,
      );
      const parsed = (() => {
        try {
          parsePolicy(c.policy ?? '', 'inline-policy.yaml');
          return undefined;
        } catch (error) {
          return error;
        }
      })();

      // Assess
      for (const [error, path] of [
        [await loaded, file],
        [parsed, 'inline-policy.yaml'],
      ] as const) {
        expect(error).toBeInstanceOf(ConfigError);
        const configError = error as ConfigError;
        expect(configError.code).toBe(c.expect.errorCode);
        expect(configError.retryable).toBe(false);
        expect(configError.message).toContain(path);
        for (const reason of reasonsOf(c)) expect(configError.message).toContain(reason);
      }
    });
  });
});
