/**
 * The SCIM service provider over the in-memory state: the request samples Microsoft and Okta
 * document, and the rules that decide access (only mapped, active users; only groups the policy
 * names; the difference, never a wipe; no event twice; the IdP's retry after a failed send).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { parsePolicy } from '../../lib/core/policy-yaml.ts';
import { createMemoryScimStore } from '../../lib/intake/scim/memory-store.ts';
import { createScimService, type ScimRequest } from '../../lib/intake/scim/service.ts';
import { createMemoryTelemetry, MetricNames } from '../../lib/observability.ts';
import { fixedDirectory, type JsonAnswer, recordingProducer, sample } from '../support/intake.ts';

const policy = parsePolicy(
  [
    'version: 1',
    'identity: { iamName: emailLocalPart, lowercase: true }',
    'teams:',
    '  platform:',
    '    idpGroups: ["Platform Engineers", displayName]',
    '    grants: [{ namespace: core, repository: api/server, permission: write }]',
    '  sre:',
    '    idpGroups: ["Platform Engineers", SRE]',
    '    grants: [{ namespace: tools, permission: write }]',
    '  data:',
    '    - { namespace: data, repository: etl/jobs, permission: read }',
    '  okta:',
    '    idpGroups: ["Test SCIMv2"]',
    '    grants: [{ namespace: core, repository: base/node, permission: read }]',
  ].join('\n'),
  'intake-test.yaml',
);

const entraIam = {
  id: 'e17a0000000000000000000000000001',
  name: 'test_user_11bb11bb-cc22-dd33-ee44-55ff55ff55ff',
};
const oktaIam = { id: '0c7a0000000000000000000000000002', name: 'test.user' };
const annIam = { id: 'a11ce000000000000000000000000001', name: 'ann' };
const baseUrl = 'https://intake.example.com/scim/v2';

const setup = () => {
  const store = createMemoryScimStore();
  const producer = recordingProducer();
  const iam = fixedDirectory([entraIam, oktaIam, annIam]);
  const telemetry = createMemoryTelemetry();
  let at = Date.now() - 60 * 60 * 1000;
  let ids = 0;
  const scim = createScimService({
    store,
    producer: producer.producer,
    directory: iam.directory,
    policy,
    log: telemetry.log,
    metrics: telemetry.metrics,
    clock: () => {
      at += 1000;
      return new Date(at);
    },
    newId: () => `id-${String(++ids).padStart(4, '0')}`,
  });
  const call = async (method: string, path: string, body?: unknown) => {
    const [pathPart, queryPart = ''] = path.split('?');
    const request: ScimRequest = {
      method,
      segments: (pathPart ?? '').split('/').filter((segment) => segment !== ''),
      query: Object.fromEntries(new URLSearchParams(queryPart)),
      body: body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body),
      baseUrl,
    };
    const reply = await scim.handle(request);
    return { status: reply.status, body: reply.body as JsonAnswer, headers: reply.headers ?? {} };
  };
  return { store, producer, iam, telemetry, call };
};

type Setup = ReturnType<typeof setup>;

const createUser = async (s: Setup, body: unknown): Promise<string> => {
  const created = await s.call('POST', '/Users', body);
  expect(created.status).toBe(201);
  return String(created.body.id);
};

const createGroup = async (s: Setup, displayName: string, members: string[] = []): Promise<string> => {
  const created = await s.call('POST', '/Groups', {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
    displayName,
    ...(members.length > 0 ? { members: members.map((value) => ({ value })) } : {}),
  });
  expect(created.status).toBe(201);
  return String(created.body.id);
};

const addMember = (s: Setup, groupId: string, userId: string) =>
  s.call(
    'PATCH',
    `/Groups/${groupId}`,
    sample('entra-patch-group-add-member.json', { f648f8d5ea4e4cd38e9c: userId }),
  );
const removeMember = (s: Setup, groupId: string, userId: string) =>
  s.call(
    'PATCH',
    `/Groups/${groupId}`,
    sample('entra-patch-group-remove-member.json', { f648f8d5ea4e4cd38e9c: userId }),
  );

const annBody = (userName = 'ann@corp.example') => ({
  schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
  userName,
  emails: [{ value: userName, primary: true, type: 'work' }],
  active: true,
});

describe('SCIM: the conversation Entra documents', () => {
  let s: Setup;
  beforeEach(() => {
    s = setup();
  });

  it('query, create, group create, add member, remove member, disable, delete', async () => {
    // Act: Entra first asks whether the user exists, then creates it.
    const missing = await s.call(
      'GET',
      '/Users?filter=userName eq "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"',
    );
    const created = await s.call('POST', '/Users', sample('entra-create-user.json'));
    const userId = String(created.body.id);
    const found = await s.call(
      'GET',
      '/Users?filter=userName eq "test_user_00AA00AA-bb11-cc22-dd33-44ee44ee44ee"',
    );
    const groupMissing = await s.call(
      'GET',
      '/Groups?excludedAttributes=members&filter=displayName eq "displayName"',
    );
    const group = await s.call('POST', '/Groups', sample('entra-create-group.json'));
    const groupId = String(group.body.id);
    const fetched = await s.call('GET', `/Groups/${groupId}?excludedAttributes=members`);
    const added = await addMember(s, groupId, userId);
    const afterAdd = s.producer.summary();
    const removed = await removeMember(s, groupId, userId);
    const afterRemove = s.producer.summary().slice(afterAdd.length);
    await addMember(s, groupId, userId);
    const disabled = await s.call(
      'PATCH',
      `/Users/${userId}`,
      sample('entra-patch-user-disable-string.json'),
    );
    const afterDisable = s.producer.summary().slice(-1);
    const deleted = await s.call('DELETE', `/Users/${userId}`);
    const gone = await s.call('GET', `/Users/${userId}`);

    // Assess
    expect(missing.body).toMatchObject({ totalResults: 0, Resources: [], startIndex: 1 });
    expect(created.status).toBe(201);
    expect(created.headers.Location).toBe(`${baseUrl}/Users/${userId}`);
    expect(created.body).toMatchObject({
      id: userId,
      userName: 'Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee',
      active: true,
      externalId: '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef',
      meta: { resourceType: 'User' },
    });
    expect(found.body.totalResults).toBe(1);
    expect(found.body.Resources[0].id).toBe(userId);
    expect(groupMissing.body.totalResults).toBe(0);
    expect(group.status).toBe(201);
    expect(fetched.body).toMatchObject({ id: groupId, displayName: 'displayName' });
    expect(fetched.body).not.toHaveProperty('members');
    expect(added.status).toBe(204);
    expect(afterAdd).toEqual([`membership.added ${entraIam.name} platform`]);
    expect(removed.status).toBe(204);
    expect(afterRemove).toEqual([`membership.removed ${entraIam.name} platform`]);
    expect(disabled.status).toBe(200);
    expect(disabled.body.active).toBe(false);
    expect(afterDisable).toEqual([`user.offboarded ${entraIam.name}`]);
    expect(deleted.status).toBe(204);
    expect(gone.status).toBe(404);
    expect(gone.body).toMatchObject({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
      status: '404',
    });
    for (const event of s.producer.events()) {
      expect(event.user).toEqual(entraIam);
      expect(event.source).toBe('scim');
    }
  });

  it.each([
    ['the string "False"', 'entra-patch-user-disable-string.json'],
    ['the boolean false', 'entra-patch-user-disable.json'],
    ['no path (Okta)', 'okta-scim-deactivate-user.json'],
  ])('offboards on active %s, and only once', async (_name, file) => {
    // Prepare
    const userId = await createUser(s, sample('entra-create-user.json'));

    // Act
    const first = await s.call('PATCH', `/Users/${userId}`, sample(file));
    const again = await s.call('PATCH', `/Users/${userId}`, sample(file));

    // Assess
    expect([first.status, again.status]).toEqual([200, 200]);
    expect(s.producer.summary()).toEqual([`user.offboarded ${entraIam.name}`]);
  });

  it('applies the multi-valued, single-valued and extension updates as Entra sends them', async () => {
    // Prepare
    const userId = await createUser(s, sample('entra-create-user.json'));

    // Act
    const multi = await s.call('PATCH', `/Users/${userId}`, sample('entra-patch-user-multi.json'));
    const flagged = await s.call(
      'PATCH',
      `/Users/${userId}`,
      sample('entra-patch-user-replace-flagged.json'),
    );
    const added = await s.call('PATCH', `/Users/${userId}`, sample('entra-patch-user-add-string.json'));
    const prefixed = await s.call('PATCH', `/Users/${userId}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [
        { op: 'REPLACE', path: 'urn:ietf:params:scim:schemas:core:2.0:User:title', value: 'Engineer' },
      ],
    });

    // Assess
    expect(multi.body.name.familyName).toBe('updatedFamilyName');
    expect(flagged.body).toMatchObject({
      displayName: 'Bjfe',
      name: { givenName: 'Kkom', familyName: 'Unua' },
      'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': { employeeNumber: 'Aklq' },
    });
    expect(flagged.body.schemas).toContain('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User');
    expect(flagged.body.emails).toEqual([
      { primary: true, type: 'work', value: 'TestMhvaes@test.microsoft.com' },
    ]);
    expect(added.body.nickName).toBe('Babs');
    expect(prefixed.body.title).toBe('Engineer');
  });

  it('answers 409 uniqueness for a userName that exists, whatever its case', async () => {
    // Prepare
    await createUser(s, sample('entra-create-user.json'));
    const body = sample('entra-create-user.json') as Record<string, unknown>;

    // Act
    const duplicate = await s.call('POST', '/Users', {
      ...body,
      userName: String(body.userName).toUpperCase(),
    });

    // Assess
    expect(duplicate.status).toBe(409);
    expect(duplicate.body).toMatchObject({ status: '409', scimType: 'uniqueness' });
  });
});

describe('SCIM: the conversation Okta documents', () => {
  let s: Setup;
  beforeEach(() => {
    s = setup();
  });

  it('push a group, change its members with filter paths, replace them, rename, deactivate', async () => {
    // Prepare
    const userId = await createUser(s, sample('okta-scim-create-user.json'));
    const other = await createUser(s, annBody());
    const group = await s.call('POST', '/Groups', sample('okta-scim-create-group.json'));
    const groupId = String(group.body.id);
    const ids = {
      '23a35c27-23d3-4c03-b4c5-6443c09e7173': userId,
      '89bb1940-b905-4575-9e7f-6f887cfb368e': other,
      'abf4dd94-a4c0-4f67-89c9-76b03340cb9b': groupId,
    };

    // Act
    const members = await s.call(
      'PATCH',
      `/Groups/${groupId}`,
      sample('okta-scim-patch-group-members.json', ids),
    );
    const afterMembers = s.producer.summary();
    const replaced = await s.call(
      'PATCH',
      `/Groups/${groupId}`,
      sample('okta-scim-patch-group-replace.json', ids),
    );
    const afterReplace = s.producer.summary().slice(afterMembers.length);
    const renamed = await s.call(
      'PATCH',
      `/Groups/${groupId}`,
      sample('okta-scim-patch-group-rename.json', ids),
    );
    const afterRename = s.producer.summary().slice(afterMembers.length + afterReplace.length);
    const listed = await s.call('GET', `/Groups/${groupId}`);
    const deactivated = await s.call('PATCH', `/Users/${userId}`, sample('okta-scim-deactivate-user.json'));

    // Assess
    expect(group.body).toMatchObject({ displayName: 'Test SCIMv2', members: [] });
    expect(members.status).toBe(204);
    expect(afterMembers).toEqual(['membership.added test.user okta']);
    expect(replaced.status).toBe(204);
    // The full push adds ann and keeps test.user: the difference, never a wipe.
    expect(afterReplace).toEqual(['membership.added ann okta']);
    expect(renamed.status).toBe(204);
    expect(afterRename).toEqual([]);
    expect(listed.body.members.map((member: { value: string }) => member.value).sort()).toEqual(
      [userId, other].sort(),
    );
    expect(deactivated.status).toBe(200);
    expect(s.producer.summary().at(-1)).toBe('user.offboarded test.user');
  });

  it('never stores or answers the password Okta sends', async () => {
    // Act
    const created = await s.call('POST', '/Users', sample('okta-scim-create-user.json'));
    const stored = await s.store.getUser(String(created.body.id));

    // Assess
    expect(JSON.stringify(created.body)).not.toContain('1mz050nq');
    expect(JSON.stringify(stored)).not.toContain('1mz050nq');
    expect(created.body).not.toHaveProperty('password');
  });

  it('lists users page by page, in a stable order, with integer counts', async () => {
    // Prepare
    for (const name of ['a', 'b', 'c', 'd', 'e']) await createUser(s, annBody(`${name}@corp.example`));

    // Act
    const first = await s.call('GET', '/Users?startIndex=1&count=2');
    const second = await s.call('GET', '/Users?startIndex=3&count=2');
    const last = await s.call('GET', '/Users?startIndex=5&count=2');
    const none = await s.call('GET', '/Users?count=0');

    // Assess
    expect([first.body.totalResults, first.body.itemsPerPage, first.body.startIndex]).toEqual([5, 2, 1]);
    expect(
      [...first.body.Resources, ...second.body.Resources, ...last.body.Resources].map(
        (user) => user.userName,
      ),
    ).toEqual(['a@corp.example', 'b@corp.example', 'c@corp.example', 'd@corp.example', 'e@corp.example']);
    expect(none.body).toMatchObject({ totalResults: 5, itemsPerPage: 0, Resources: [] });
  });
});

describe('SCIM: what a membership gives', () => {
  let s: Setup;
  beforeEach(() => {
    s = setup();
  });

  it('keeps a team the user still has through another group', async () => {
    // Prepare
    const userId = await createUser(s, annBody());
    const engineers = await createGroup(s, 'Platform Engineers');
    const sre = await createGroup(s, 'SRE');
    await addMember(s, engineers, userId);
    await addMember(s, sre, userId);
    s.producer.clear();

    // Act
    await removeMember(s, engineers, userId);

    // Assess: platform came only from "Platform Engineers"; sre also from "SRE".
    expect(s.producer.summary()).toEqual(['membership.removed ann platform']);
  });

  it('moves the members of a group renamed into other teams', async () => {
    // Prepare
    const userId = await createUser(s, annBody());
    const groupId = await createGroup(s, 'SRE', [userId]);
    s.producer.clear();

    // Act
    const renamed = await s.call('PATCH', `/Groups/${groupId}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'Replace', path: 'displayName', value: 'data' }],
    });

    // Assess
    expect(renamed.status).toBe(204);
    expect(s.producer.summary().sort()).toEqual(['membership.added ann data', 'membership.removed ann sre']);
    expect((await s.store.getGroup(groupId))?.pending).toBeUndefined();
  });

  it('removes the teams of every member when a group is deleted', async () => {
    // Prepare
    const ann = await createUser(s, annBody());
    const test = await createUser(s, sample('okta-scim-create-user.json'));
    const groupId = await createGroup(s, 'Platform Engineers', [ann, test]);
    s.producer.clear();

    // Act
    const deleted = await s.call('DELETE', `/Groups/${groupId}`);
    const gone = await s.call('GET', `/Groups/${groupId}`);

    // Assess
    expect(deleted.status).toBe(204);
    expect(gone.status).toBe(404);
    expect(s.producer.summary().sort()).toEqual([
      'membership.removed ann platform',
      'membership.removed ann sre',
      'membership.removed test.user platform',
      'membership.removed test.user sre',
    ]);
  });

  it('records an unknown group and grants nothing, answering 2xx', async () => {
    // Prepare
    const userId = await createUser(s, annBody());
    const groupId = await createGroup(s, 'Marketing');

    // Act
    const added = await addMember(s, groupId, userId);
    const listed = await s.call('GET', `/Groups/${groupId}`);

    // Assess
    expect(added.status).toBe(204);
    expect(listed.body.members).toEqual([expect.objectContaining({ value: userId })]);
    expect(s.producer.sent).toEqual([]);
    expect(s.telemetry.counters.get(MetricNames.intakeUnknownGroups)).toBe(1);
  });

  it('records an unmapped user, sends nothing for it, reports why, and answers 2xx', async () => {
    // Prepare
    const userId = await createUser(s, annBody('nobody@corp.example'));
    const groupId = await createGroup(s, 'SRE');

    // Act
    const added = await addMember(s, groupId, userId);
    const disabled = await s.call('PATCH', `/Users/${userId}`, sample('entra-patch-user-disable.json'));

    // Assess
    expect([added.status, disabled.status]).toEqual([204, 200]);
    expect(s.producer.sent).toEqual([]);
    expect(s.telemetry.counters.get(MetricNames.intakeUnmappedUsers)).toBeGreaterThanOrEqual(2);
    expect(
      s.telemetry.lines.some((line) => String(line.reason).includes('IAM knows no user named "nobody"')),
    ).toBe(true);
  });

  it('maps a user once IAM knows it: the next membership change sends its events', async () => {
    // Prepare
    const userId = await createUser(s, annBody('late@corp.example'));
    const groupId = await createGroup(s, 'SRE');
    await addMember(s, groupId, userId);
    s.iam.add({ id: 'da7e0000000000000000000000000009', name: 'late' });

    // Act
    const data = await createGroup(s, 'data');
    await addMember(s, data, userId);

    // Assess
    expect(s.producer.summary()).toEqual(['membership.added late data']);
    expect((await s.store.getUser(userId))?.iam?.name).toBe('late');
  });

  it('sends nothing for a disabled user joining, and rejoins every team when enabled again', async () => {
    // Prepare
    const userId = await createUser(s, { ...annBody(), active: false });
    const engineers = await createGroup(s, 'Platform Engineers');
    const data = await createGroup(s, 'data');

    // Act
    await addMember(s, engineers, userId);
    await addMember(s, data, userId);
    const whileDisabled = s.producer.summary();
    const enabled = await s.call('PATCH', `/Users/${userId}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'Replace', path: 'active', value: 'True' }],
    });

    // Assess
    expect(whileDisabled).toEqual([]);
    expect(enabled.body.active).toBe(true);
    expect(s.producer.summary().sort()).toEqual([
      'membership.added ann data',
      'membership.added ann platform',
      'membership.added ann sre',
    ]);
  });

  it('moves the teams from the old IAM user to the new one when the mapped attribute changes', async () => {
    // Prepare
    const userId = await createUser(s, annBody('test.user@corp.example'));
    const groupId = await createGroup(s, 'data', [userId]);
    s.producer.clear();

    // Act
    await s.call('PATCH', `/Users/${userId}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'replace', path: 'emails[type eq "work"].value', value: 'ann@corp.example' }],
    });

    // Assess
    expect(groupId).toBeDefined();
    expect(s.producer.summary()).toEqual(['membership.removed test.user data', 'membership.added ann data']);
  });
});

describe('SCIM: retries and failures', () => {
  let s: Setup;
  beforeEach(() => {
    s = setup();
  });

  it("answers 503 when the events cannot be queued, and the provider's retry sends the same events once", async () => {
    // Prepare
    const userId = await createUser(s, annBody());
    const groupId = await createGroup(s, 'data');
    s.producer.failNext(1);

    // Act
    const failed = await addMember(s, groupId, userId);
    const retried = await addMember(s, groupId, userId);
    const again = await addMember(s, groupId, userId);

    // Assess
    expect(failed.status).toBe(503);
    expect(failed.body).toMatchObject({ status: '503' });
    expect(retried.status).toBe(204);
    expect(again.status).toBe(204);
    expect(s.producer.summary()).toEqual(['membership.added ann data']);
  });

  it('keeps an offboarding whose send failed, and sends it on the next request for the user', async () => {
    // Prepare
    const userId = await createUser(s, annBody());
    s.producer.failNext(1);

    // Act
    const failed = await s.call('PATCH', `/Users/${userId}`, sample('entra-patch-user-disable.json'));
    const retried = await s.call('PATCH', `/Users/${userId}`, sample('entra-patch-user-disable.json'));

    // Assess
    expect(failed.status).toBe(503);
    expect(retried.status).toBe(200);
    expect(s.producer.summary()).toEqual(['user.offboarded ann']);
  });

  it('answers 503 (retry) when IAM cannot be read, and creates nothing', async () => {
    // Prepare
    s.iam.setDown(true);

    // Act
    const created = await s.call('POST', '/Users', annBody());
    const listed = await s.call('GET', '/Users');

    // Assess
    expect(created.status).toBe(503);
    expect(listed.body.totalResults).toBe(0);
  });

  it('offboards without asking IAM when the user is already mapped', async () => {
    // Prepare
    const userId = await createUser(s, annBody());
    s.iam.setDown(true);

    // Act
    const disabled = await s.call('PATCH', `/Users/${userId}`, sample('entra-patch-user-disable.json'));

    // Assess
    expect(disabled.status).toBe(200);
    expect(s.producer.summary()).toEqual(['user.offboarded ann']);
  });
});

describe('SCIM: bad requests', () => {
  let s: Setup;
  beforeEach(() => {
    s = setup();
  });

  it.each([
    ['malformed JSON', 'POST', '/Users', '{"userName": "a",', 400, 'invalidSyntax'],
    ['an empty body', 'POST', '/Users', '', 400, 'invalidSyntax'],
    [
      'an unknown schema',
      'POST',
      '/Users',
      { schemas: ['urn:example:Thing'], userName: 'a' },
      400,
      'invalidSyntax',
    ],
    [
      'no userName',
      'POST',
      '/Users',
      { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'] },
      400,
      'invalidValue',
    ],
    ['active not a boolean', 'POST', '/Users', { ...annBody(), active: 'maybe' }, 400, 'invalidValue'],
    [
      'a group without displayName',
      'POST',
      '/Groups',
      { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'] },
      400,
      'invalidValue',
    ],
    [
      'a PatchOp without its schema',
      'PATCH',
      '/Users/x',
      { Operations: [{ op: 'add', path: 'a', value: 1 }] },
      400,
      'invalidSyntax',
    ],
    ['an unsupported filter', 'GET', '/Users?filter=userName eq', undefined, 400, 'invalidFilter'],
    [
      'a filter that is not SCIM',
      'GET',
      '/Groups?filter=displayName == "x"',
      undefined,
      400,
      'invalidFilter',
    ],
  ])('%s: %s %s', async (_name, method, path, body, status, scimType) => {
    // Act
    const reply = await s.call(method, path, body);

    // Assess
    expect(reply.status).toBe(status);
    expect(reply.body).toMatchObject({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
      status: String(status),
      scimType,
    });
  });

  it.each([
    ['a path through __proto__', { op: 'add', path: '__proto__.polluted', value: 'yes' }],
    [
      'a value key through constructor',
      { op: 'replace', value: { 'constructor.prototype.polluted': 'yes' } },
    ],
    [
      'a nested __proto__ key',
      { op: 'replace', value: { name: JSON.parse('{"__proto__": {"polluted": "yes"}}') } },
    ],
  ])('refuses %s and leaves Object.prototype alone', async (_name, operation) => {
    // Prepare
    const userId = await createUser(s, annBody());

    // Act
    const reply = await s.call('PATCH', `/Users/${userId}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [operation],
    });

    // Assess
    expect(reply.status).toBe(400);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses to change the id, and 404s unknown resources and paths', async () => {
    // Prepare
    const userId = await createUser(s, annBody());

    // Act
    const changed = await s.call('PATCH', `/Users/${userId}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'replace', path: 'id', value: 'other' }],
    });
    const unknownUser = await s.call('PATCH', '/Users/nope', sample('entra-patch-user-disable.json'));
    const unknownGroup = await s.call('DELETE', '/Groups/nope');
    const unknownPath = await s.call('GET', '/Bulk');

    // Assess
    expect(changed.body).toMatchObject({ status: '400', scimType: 'mutability' });
    expect([unknownUser.status, unknownGroup.status, unknownPath.status]).toEqual([404, 404, 404]);
  });
});

describe('SCIM: filters', () => {
  it.each([
    ['userName eq, in any case', 'userName eq "ANN@corp.example"', ['ann@corp.example']],
    ['externalId eq (case-exact)', 'externalId eq "ext-ann"', ['ann@corp.example']],
    ['externalId eq in another case', 'externalId eq "EXT-ANN"', []],
    [
      'the core schema prefix',
      'urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bob@corp.example"',
      ['bob@corp.example'],
    ],
    [
      'the work e-mail, as Entra may match',
      'emails[type eq "work"].value eq "bob@corp.example"',
      ['bob@corp.example'],
    ],
    ['and', 'userName eq "ann@corp.example" and active eq true', ['ann@corp.example']],
    [
      'or',
      'userName eq "ann@corp.example" or userName eq "bob@corp.example"',
      ['ann@corp.example', 'bob@corp.example'],
    ],
    ['no match', 'userName eq "nobody"', []],
  ])('finds users by %s', async (_name, filter, expected) => {
    // Prepare
    const s = setup();
    await createUser(s, { ...annBody('ann@corp.example'), externalId: 'ext-ann' });
    await createUser(s, annBody('bob@corp.example'));

    // Act
    const reply = await s.call('GET', `/Users?filter=${encodeURIComponent(filter)}`);

    // Assess
    expect(reply.status).toBe(200);
    expect(reply.body.Resources.map((user: { userName: string }) => user.userName).sort()).toEqual(expected);
  });

  it('finds groups by displayName in any case, by id, and by member, without members when excluded', async () => {
    // Prepare
    const s = setup();
    const ann = await createUser(s, annBody());
    const sre = await createGroup(s, 'SRE', [ann]);
    await createGroup(s, 'data');

    // Act
    const byName = await s.call(
      'GET',
      `/Groups?excludedAttributes=members&filter=${encodeURIComponent('displayName eq "sre"')}`,
    );
    const byId = await s.call('GET', `/Groups?filter=${encodeURIComponent(`id eq "${sre}"`)}`);
    const byMember = await s.call(
      'GET',
      `/Groups?filter=${encodeURIComponent(`members[value eq "${ann}"]`)}`,
    );
    const entraCheck = await s.call(
      'GET',
      `/Groups?excludedAttributes=members&filter=${encodeURIComponent(`id eq "${sre}" and members eq "${ann}"`)}`,
    );
    const notMember = await s.call(
      'GET',
      `/Groups?filter=${encodeURIComponent(`id eq "${sre}" and members eq "other"`)}`,
    );
    const page = await s.call('GET', '/Groups?startIndex=2&count=1&attributes=displayName');

    // Assess
    expect(byName.body.Resources).toEqual([expect.objectContaining({ id: sre, displayName: 'SRE' })]);
    expect(byName.body.Resources[0]).not.toHaveProperty('members');
    expect(byId.body.Resources[0].members).toEqual([expect.objectContaining({ value: ann })]);
    expect(byMember.body.Resources.map((group: { id: string }) => group.id)).toEqual([sre]);
    expect(entraCheck.body.totalResults).toBe(1);
    expect(entraCheck.body.Resources[0]).not.toHaveProperty('members');
    expect(notMember.body.totalResults).toBe(0);
    expect(page.body).toMatchObject({ totalResults: 2, itemsPerPage: 1, startIndex: 2 });
    expect(Object.keys(page.body.Resources[0]).sort()).toEqual(['displayName', 'id', 'meta', 'schemas']);
  });
});

describe('SCIM: discovery', () => {
  it.each([
    ['/ServiceProviderConfig', { patch: { supported: true }, bulk: { supported: false } }],
    ['/ResourceTypes', { totalResults: 2 }],
    ['/ResourceTypes/Group', { id: 'Group', endpoint: '/Groups' }],
    ['/Schemas', { totalResults: 3 }],
    [
      '/Schemas/urn:ietf:params:scim:schemas:core:2.0:User',
      { id: 'urn:ietf:params:scim:schemas:core:2.0:User' },
    ],
  ])('GET %s', async (path, expected) => {
    // Prepare
    const s = setup();

    // Act
    const reply = await s.call('GET', path);

    // Assess
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject(expected);
  });
});
