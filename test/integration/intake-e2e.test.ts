/**
 * The intake end to end on the local stack: HTTP → the local API Gateway stand-in → the real
 * intake handler → fauxqs → pollers → the queue handlers → the SWR/IAM simulator, with the SCIM
 * state and memberships in dynalite. The identity providers' documented requests drive it; the
 * final permissions are read back from SWR with `swr-access show`, as an operator would.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CliIo } from '../../lib/cli/io.ts';
import { main as cli } from '../../lib/cli/main.ts';
import { type LocalIntake, startLocalIntake } from '../../lib/local/intake.ts';
import { signRequest } from '../../lib/local/sigv4.ts';
import { localCredentials, localRegion } from '../../lib/local/sqs.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { createMemoryTelemetry, MetricNames } from '../../lib/observability.ts';
import { createDynamoStore } from '../../lib/store/index.ts';
import {
  type HttpReply,
  intakePolicyPath,
  intakeSeed,
  oktaClient,
  oktaDelivery,
  oktaEvent,
  sample,
  sampleUsers,
  scimClient,
} from '../support/intake.ts';
import { demoUsers } from '../support/stack.ts';

const drainMs = 45_000;

let stack: LocalStack;
let intake: LocalIntake;
let scim: ReturnType<typeof scimClient>;
let okta: ReturnType<typeof oktaClient>;
const telemetry = createMemoryTelemetry();

beforeAll(async () => {
  stack = await startLocalStack({
    seed: intakeSeed(),
    policyFile: intakePolicyPath,
    log: telemetry.log,
    metrics: telemetry.metrics,
  });
  intake = await startLocalIntake(stack, { log: telemetry.log, metrics: telemetry.metrics });
  scim = scimClient(intake.url, intake.scimToken);
  okta = oktaClient(intake.url, intake.oktaHookSecret);
});

afterAll(async () => {
  await intake?.close();
  await stack?.stop();
});

beforeEach(async () => {
  await stack.drain({ timeoutMs: drainMs });
});

/** `swr-access show --user NAME --json` against the stack: target → permission, as SWR reports it. */
const shown = async (userName: string): Promise<Record<string, string>> => {
  const out: string[] = [];
  const err: string[] = [];
  const io: Partial<CliIo> = {
    stdout: { write: (text: string) => out.push(text) },
    stderr: { write: (text: string) => err.push(text) },
    stdin: (async function* () {})(),
    env: { ...stack.env, POLICY_FILE: intakePolicyPath },
  };
  const code = await cli(['show', '--user', userName, '--json'], io);
  expect(code, err.join('')).toBe(0);
  const result = JSON.parse(out.join('')) as { permissions: Array<{ target: string; permission: string }> };
  return Object.fromEntries(result.permissions.map((entry) => [entry.target, entry.permission]));
};

const settle = async () => {
  await stack.drain({ timeoutMs: drainMs });
};

const frontendGrants = { 'core/web/frontend': 'write', 'core/base/node': 'read' };
const dataGrants = { 'data/etl/jobs': 'write', 'core/base/node': 'read' };

const expectScimError = (reply: HttpReply, status: number, scimType?: string) => {
  expect(reply.status).toBe(status);
  expect(reply.headers.get('content-type')).toBe('application/scim+json');
  expect(reply.body).toMatchObject({
    schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
    status: String(status),
    ...(scimType === undefined ? {} : { scimType }),
  });
};

describe('Entra ID provisioning, as Microsoft documents it', () => {
  it('query, create, group create, add member, remove member, disable, delete', async () => {
    // Act + Assess, step by step as Entra's provisioning cycle sends them.
    const query = await scim(
      'GET',
      `/Users?filter=${encodeURIComponent('userName eq "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"')}`,
    );
    expect(query.body).toMatchObject({ totalResults: 0, Resources: [] });

    const created = await scim('POST', '/Users', sample('entra-create-user.json'));
    expect(created.status).toBe(201);
    const userId = String(created.body.id);

    const groupQuery = await scim(
      'GET',
      `/Groups?excludedAttributes=members&filter=${encodeURIComponent('displayName eq "displayName"')}`,
    );
    expect(groupQuery.body.totalResults).toBe(0);
    const group = await scim('POST', '/Groups', sample('entra-create-group.json'));
    expect(group.status).toBe(201);
    const groupId = String(group.body.id);

    const added = await scim(
      'PATCH',
      `/Groups/${groupId}`,
      sample('entra-patch-group-add-member.json', { f648f8d5ea4e4cd38e9c: userId }),
    );
    expect(added.status).toBe(204);
    await settle();
    expect(await shown(sampleUsers.entra.name)).toEqual(frontendGrants);

    const removed = await scim(
      'PATCH',
      `/Groups/${groupId}`,
      sample('entra-patch-group-remove-member.json', { f648f8d5ea4e4cd38e9c: userId }),
    );
    expect(removed.status).toBe(204);
    await settle();
    expect(await shown(sampleUsers.entra.name)).toEqual({});

    await scim(
      'PATCH',
      `/Groups/${groupId}`,
      sample('entra-patch-group-add-member.json', { f648f8d5ea4e4cd38e9c: userId }),
    );
    await settle();
    expect(await shown(sampleUsers.entra.name)).toEqual(frontendGrants);

    const disabled = await scim('PATCH', `/Users/${userId}`, sample('entra-patch-user-disable-string.json'));
    expect(disabled.status).toBe(200);
    expect(disabled.body.active).toBe(false);
    await settle();
    expect(await shown(sampleUsers.entra.name)).toEqual({});

    const deleted = await scim('DELETE', `/Users/${userId}`);
    expect(deleted.status).toBe(204);
    expect((await scim('GET', `/Users/${userId}`)).status).toBe(404);
    await settle();
    expect(await shown(sampleUsers.entra.name)).toEqual({});
    expect(await stack.deadLetters()).toEqual([]);
  });
});

describe('Okta provisioning, as Okta documents it', () => {
  it('create the user, push the group, change members with the filter path, replace them, deactivate', async () => {
    // Prepare: a second member for the replace, mapped through the demo user frank.
    const frank = await scim('POST', '/Users', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
      userName: 'frank@okta.local',
      emails: [{ primary: true, value: 'Frank@okta.local', type: 'work' }],
      active: true,
    });
    const frankId = String(frank.body.id);

    // Act + Assess
    const lookup = await scim(
      'GET',
      `/Users?filter=${encodeURIComponent('userName eq "test.user@okta.local"')}&startIndex=1&count=100`,
    );
    expect(lookup.body.totalResults).toBe(0);
    const created = await scim('POST', '/Users', sample('okta-scim-create-user.json'));
    expect(created.status).toBe(201);
    expect(created.text).not.toContain('1mz050nq');
    const userId = String(created.body.id);

    const pushed = await scim('POST', '/Groups', sample('okta-scim-create-group.json'));
    expect(pushed.status).toBe(201);
    const groupId = String(pushed.body.id);
    const ids = {
      '23a35c27-23d3-4c03-b4c5-6443c09e7173': userId,
      '89bb1940-b905-4575-9e7f-6f887cfb368e': frankId,
      'abf4dd94-a4c0-4f67-89c9-76b03340cb9b': groupId,
    };

    expect(
      (await scim('PATCH', `/Groups/${groupId}`, sample('okta-scim-patch-group-members.json', ids))).status,
    ).toBe(204);
    await settle();
    expect(await shown(sampleUsers.okta.name)).toEqual(dataGrants);
    expect(await shown('frank')).toEqual({});

    expect(
      (await scim('PATCH', `/Groups/${groupId}`, sample('okta-scim-patch-group-replace.json', ids))).status,
    ).toBe(204);
    expect(
      (await scim('PATCH', `/Groups/${groupId}`, sample('okta-scim-patch-group-rename.json', ids))).status,
    ).toBe(204);
    await settle();
    expect(await shown(sampleUsers.okta.name)).toEqual(dataGrants);
    expect(await shown('frank')).toEqual(dataGrants);

    const deactivated = await scim('PATCH', `/Users/${userId}`, sample('okta-scim-deactivate-user.json'));
    expect(deactivated.status).toBe(200);
    await settle();
    expect(await shown(sampleUsers.okta.name)).toEqual({});
    expect(await shown('frank')).toEqual(dataGrants);
    expect(await stack.deadLetters()).toEqual([]);
  });
});

describe('Okta Event Hooks', () => {
  it('answers the one-time verification with the challenge, only with the secret', async () => {
    // Act
    const verified = await okta.verify('7jK3-challenge');
    const refused = await okta.verify('7jK3-challenge', 'not-the-secret');

    // Assess
    expect(verified.status).toBe(200);
    expect(verified.body).toEqual({ verification: '7jK3-challenge' });
    expect(refused.status).toBe(401);
    expect(refused.text).toBe('');
  });

  it('applies a membership delivery once, however often Okta delivers it', async () => {
    // access-changes is a standard queue: both copies reach the handlers, and the store takes the
    // second as the same fact. Two instances working at once may both send the grant; SWR then
    // holds it once, and the audit trail may say "grant" twice for the same target.
    // Prepare
    const delivery = sample('okta-hook-membership-add.json');
    const before = telemetry.lines.filter(
      (line) => line.audit === true && line.userName === sampleUsers.hook.name,
    ).length;

    // Act
    const first = await okta.deliver(delivery);
    const copy = await okta.deliver(delivery);
    await settle();

    // Assess
    expect([first.status, copy.status]).toEqual([204, 204]);
    expect(await shown(sampleUsers.hook.name)).toEqual(dataGrants);
    const grants = telemetry.lines
      .filter((line) => line.audit === true && line.userName === sampleUsers.hook.name)
      .slice(before);
    expect(new Set(grants.map((line) => String(line.target))).size).toBe(2);
  });

  it('orders events by published, not by arrival', async () => {
    // Prepare: heidi leaves test1 five minutes after joining it; the join arrives last.
    const heidiTarget = {
      id: '00uheidi',
      type: 'User',
      alternateId: 'heidi@example.com',
      displayName: 'Heidi',
    };
    const group = {
      id: '00g8mo0l5wuTxmoIC0h7',
      type: 'UserGroup',
      alternateId: 'unknown',
      displayName: 'test1',
    };
    const base = Date.now() - 30 * 60_000;
    const leave = oktaEvent('okta-hook-membership-add.json', {
      uuid: crypto.randomUUID(),
      eventType: 'group.user_membership.remove',
      published: new Date(base + 5 * 60_000).toISOString(),
      target: [heidiTarget, group],
    });
    const join = oktaEvent('okta-hook-membership-add.json', {
      uuid: crypto.randomUUID(),
      published: new Date(base).toISOString(),
      target: [heidiTarget, group],
    });

    const staleBefore = telemetry.counters.get(MetricNames.staleEvents) ?? 0;

    // Act
    await okta.deliver(oktaDelivery([leave]));
    await settle();
    await okta.deliver(oktaDelivery([join]));
    await settle();

    // Assess: both facts reached the store; the later one (the leave) stands.
    const heidi = await shown('heidi');
    expect(heidi).not.toHaveProperty('data/etl/jobs');
    expect(heidi).not.toHaveProperty('core/base/node');
    const record = await createDynamoStore({ client: stack.dynamo.client, tableName: stack.tableName }).get(
      demoUsers.heidi.id,
    );
    expect(record?.teams.data).toMatchObject({ member: false, at: leave.published });
    // The join was queued and judged older than the leave: ignored as stale, not lost.
    expect((telemetry.counters.get(MetricNames.staleEvents) ?? 0) - staleBefore).toBeGreaterThanOrEqual(1);
  });

  it('takes a batch of events, offboards on deactivate, and skips what it cannot use', async () => {
    // Prepare: the leaver joins test1, then is deactivated, in one delivery with a null-target event.
    const leaverTarget = {
      id: '00u3m90rxKjGQ0G6L1d6',
      type: 'User',
      alternateId: 'johndoet@doesnotexist.com',
      displayName: 'John Doe',
    };
    const group = {
      id: '00g8mo0l5wuTxmoIC0h7',
      type: 'UserGroup',
      alternateId: 'unknown',
      displayName: 'test1',
    };
    const base = Date.now() - 20 * 60_000;
    const join = oktaEvent('okta-hook-membership-add.json', {
      uuid: crypto.randomUUID(),
      published: new Date(base).toISOString(),
      target: [leaverTarget, group],
    });
    await okta.deliver(oktaDelivery([join]));
    await settle();
    const joined = await shown(sampleUsers.leaver.name);
    const deactivate = oktaEvent('okta-hook-deactivate.json', {
      published: new Date(base + 60_000).toISOString(),
    });
    const nullTarget = oktaEvent('okta-hook-null-target.json');
    const other = oktaEvent('okta-hook-membership-add.json', {
      uuid: crypto.randomUUID(),
      eventType: 'user.session.start',
      published: new Date(base).toISOString(),
    });

    // Act
    const delivered = await okta.deliver(oktaDelivery([nullTarget, deactivate, other]));
    await settle();

    // Assess
    expect(joined).toEqual(dataGrants);
    expect(delivered.status).toBe(204);
    expect(await shown(sampleUsers.leaver.name)).toEqual({});
    const skipped = telemetry.lines.filter((line) => line.message === 'intake: Okta event not acted on');
    expect(skipped.map((line) => String(line.reason))).toEqual(
      expect.arrayContaining([
        'the event has no User and UserGroup target',
        'event type user.session.start is not one we act on',
      ]),
    );
  });

  it('answers 400 to what is not a delivery, and 401 without the secret', async () => {
    // Act
    const notJson = await okta.deliver('{"data": ');
    const notDelivery = await okta.deliver({ events: [] });
    const unauthorized = await okta.deliver(sample('okta-hook-membership-add.json'), 'Bearer nope');

    // Assess
    expect([notJson.status, notDelivery.status, unauthorized.status]).toEqual([400, 400, 401]);
  });
});

describe('our own events on /events (IAM SigV4)', () => {
  const post = async (body: string, headers: Record<string, string>) =>
    fetch(`${intake.url}/events`, { method: 'POST', headers, body });

  it('queues a signed array of events, and the handlers apply it', async () => {
    // Prepare
    const events = [
      {
        id: `hr-${crypto.randomUUID()}`,
        type: 'membership.added',
        occurredAt: new Date(Date.now() - 60_000).toISOString(),
        source: 'workday',
        user: { name: demoUsers.erin.name },
        team: 'platform',
      },
    ];
    const body = JSON.stringify(events);
    const headers = await signRequest(
      new URL(`${intake.url}/events`),
      'POST',
      body,
      localCredentials,
      localRegion,
    );

    // Act
    const response = await post(body, headers);
    await settle();

    // Assess
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ accepted: 1, accessChanges: 1, offboarding: 0 });
    expect(await shown(demoUsers.erin.name)).toMatchObject({ tools: 'read', 'tools/ci/runner': 'write' });
  });

  it.each([
    [
      'unsigned',
      async (body: string) => ({ 'content-type': 'application/json', host: new URL(intake.url).host, body }),
    ],
    [
      'signed by someone else',
      async (body: string) =>
        signRequest(
          new URL(`${intake.url}/events`),
          'POST',
          body,
          { accessKeyId: 'local', secretAccessKey: 'other' },
          localRegion,
        ),
    ],
    [
      'signed for another body',
      async () => signRequest(new URL(`${intake.url}/events`), 'POST', '[]', localCredentials, localRegion),
    ],
  ])('refuses a request %s (403, the handler never runs)', async (_name, headersOf) => {
    // Prepare
    const body = JSON.stringify([{ id: 'x' }]);
    const { body: _drop, ...headers } = (await headersOf(body)) as Record<string, string>;

    // Act
    const response = await post(body, headers);

    // Assess
    expect(response.status).toBe(403);
  });

  it('refuses an invalid event with its position, queueing none', async () => {
    // Prepare
    const good = {
      id: `hr-${crypto.randomUUID()}`,
      type: 'membership.added',
      occurredAt: new Date().toISOString(),
      user: { name: demoUsers.dave.name },
      team: 'platform',
    };
    const body = JSON.stringify([good, { ...good, id: 'hr-bad', team: 'not/allowed\u0000' }]);
    const headers = await signRequest(
      new URL(`${intake.url}/events`),
      'POST',
      body,
      localCredentials,
      localRegion,
    );

    // Act
    const response = await post(body, headers);
    const answer = (await response.json()) as { problems: Array<{ index: number }> };
    await settle();

    // Assess
    expect(response.status).toBe(400);
    expect(answer.problems.map((problem) => problem.index)).toEqual([1]);
    expect(await shown(demoUsers.dave.name)).toEqual({});
  });
});

describe('bad input', () => {
  it('answers 401 with no detail to a wrong or missing token', async () => {
    // Act
    const wrong = await scimClient(intake.url, 'wrong-token')('GET', '/Users');
    const missing = await fetch(`${intake.url}/scim/v2/Users`);

    // Assess
    expectScimError(wrong, 401);
    expect(wrong.body).not.toHaveProperty('detail');
    expect(wrong.headers.get('www-authenticate')).toContain('Bearer');
    expect(missing.status).toBe(401);
  });

  it.each([
    [
      'malformed JSON',
      '{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": ',
      'invalidSyntax',
    ],
    [
      'an unknown schema',
      { schemas: ['urn:example:params:scim:schemas:Person'], userName: 'x' },
      'invalidSyntax',
    ],
  ])('answers 400 to %s', async (_name, body, scimType) => {
    // Act
    const reply = await scim('POST', '/Users', body);

    // Assess
    expectScimError(reply, 400, scimType);
  });

  it('answers 413 to an oversized body, before reading it', async () => {
    // Act
    const reply = await scim(
      'POST',
      '/Users',
      JSON.stringify({ userName: 'x', padding: 'x'.repeat(1_100_000) }),
    );

    // Assess
    expectScimError(reply, 413);
  });

  it('records an unknown group and an unmapped user, grants nothing, and says why', async () => {
    // Prepare
    const unmapped = await scim('POST', '/Users', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
      userName: 'ghost@corp.example',
      emails: [{ value: 'ghost@corp.example', primary: true }],
    });
    const mapped = await scim('POST', '/Users', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
      userName: 'carol@corp.example',
      emails: [{ value: 'carol@corp.example', primary: true }],
    });
    const marketing = await scim('POST', '/Groups', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
      displayName: 'Marketing',
    });
    const frontend = await scim('POST', '/Groups', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
      displayName: 'Frontend Engineers',
    });
    const carolBefore = await shown('carol');
    const counters = { ...Object.fromEntries(telemetry.counters) };

    // Act
    const unknownGroup = await scim(
      'PATCH',
      `/Groups/${marketing.body.id}`,
      sample('entra-patch-group-add-member.json', { f648f8d5ea4e4cd38e9c: String(mapped.body.id) }),
    );
    const unmappedUser = await scim(
      'PATCH',
      `/Groups/${frontend.body.id}`,
      sample('entra-patch-group-add-member.json', { f648f8d5ea4e4cd38e9c: String(unmapped.body.id) }),
    );
    await settle();

    // Assess
    expect([unmapped.status, unknownGroup.status, unmappedUser.status]).toEqual([201, 204, 204]);
    expect(await shown('carol')).toEqual(carolBefore);
    const delta = (name: string) => (telemetry.counters.get(name) ?? 0) - (counters[name] ?? 0);
    expect(delta(MetricNames.intakeUnknownGroups)).toBe(1);
    expect(delta(MetricNames.intakeUnmappedUsers)).toBeGreaterThanOrEqual(1);
    expect(
      telemetry.lines.some((line) => String(line.reason).includes('IAM knows no user named "ghost"')),
    ).toBe(true);
    expect(await stack.deadLetters()).toEqual([]);
  });
});
