/**
 * The SCIM state port, run against both adapters: the in-memory one the unit tests use and the
 * DynamoDB one (on dynalite) the intake function uses. Same answers, same conditions.
 */
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDynamoScimStore, scimKeyPrefix } from '../../lib/intake/scim/dynamo-store.ts';
import { createMemoryScimStore } from '../../lib/intake/scim/memory-store.ts';
import type { ScimGroupRecord, ScimStore, ScimUserRecord } from '../../lib/intake/scim/state.ts';
import { type LocalDynamo, startLocalDynamo } from '../../lib/local/dynamo.ts';
import { ensureTable } from '../../lib/store/index.ts';

let dynamo: LocalDynamo;
let tables = 0;

beforeAll(async () => {
  dynamo = await startLocalDynamo();
});

afterAll(async () => {
  await dynamo?.stop();
});

const adapters: Array<[string, () => Promise<ScimStore>]> = [
  ['memory', async () => createMemoryScimStore()],
  [
    'dynamodb',
    async () => {
      const tableName = `scim-contract-${++tables}`;
      await ensureTable(dynamo.client, tableName);
      return createDynamoScimStore({ client: dynamo.client, tableName });
    },
  ],
];

const at = (second: number): string => new Date(Date.UTC(2026, 10, 20, 10, 0, second)).toISOString();

const userFactory = (
  id: string,
  userName: string,
  overrides: Partial<ScimUserRecord> = {},
): ScimUserRecord => ({
  id,
  userName,
  active: true,
  attributes: {
    userName,
    name: { givenName: 'Ann' },
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': { employeeNumber: '7' },
    emails: [{ value: `${userName}@example.com`, primary: true, type: 'work' }],
    nickName: null,
  },
  created: at(0),
  lastModified: at(0),
  version: 1,
  ...overrides,
});

const groupFactory = (id: string, displayName: string): ScimGroupRecord => ({
  id,
  displayName,
  created: at(0),
  lastModified: at(0),
  version: 1,
});

describe.each(adapters)('SCIM state (%s)', (_name, open) => {
  it('creates a user, reads it back as written, finds it by userName without case', async () => {
    // Prepare
    const store = await open();
    const ann = userFactory('u1', 'Ann@Example.com', { iam: { id: 'a'.repeat(32), name: 'ann' } });

    // Act
    const created = await store.createUser(ann);

    // Assess
    expect(created).toBe('ok');
    expect(await store.getUser('u1')).toEqual(ann);
    expect(await store.userIdByName('ann@example.COM')).toBe('u1');
    expect(await store.userIdByName('bob')).toBeUndefined();
    expect((await store.getUsers(['u1', 'missing'])).get('u1')).toEqual(ann);
  });

  it('refuses a second live user of the same userName, and frees the name when the user goes', async () => {
    // Prepare
    const store = await open();
    const first = userFactory('u1', 'ann');
    await store.createUser(first);

    // Act
    const second = await store.createUser(userFactory('u2', 'ANN'));
    await store.removeUser(first);
    const third = await store.createUser(userFactory('u3', 'ann'));

    // Assess
    expect(second).toBe('duplicate');
    expect(third).toBe('ok');
    expect(await store.userIdByName('ann')).toBe('u3');
  });

  it('lets a name go to a new user once the holder is marked deleted', async () => {
    // Prepare
    const store = await open();
    const first = userFactory('u1', 'ann');
    await store.createUser(first);
    await store.saveUser({ ...first, deleted: true, version: 2 }, 1, 'ann');

    // Act
    const second = await store.createUser(userFactory('u2', 'ann'));

    // Assess
    expect(second).toBe('ok');
    expect(await store.userIdByName('ann')).toBe('u2');
  });

  it('saves only over the version read, and moves the userName index on a rename', async () => {
    // Prepare
    const store = await open();
    const ann = userFactory('u1', 'ann');
    await store.createUser(ann);
    await store.createUser(userFactory('u2', 'bob'));

    // Act
    const renamed = await store.saveUser({ ...ann, userName: 'anne', version: 2 }, 1, 'ann');
    const stale = await store.saveUser({ ...ann, active: false, version: 2 }, 1, 'ann');
    const taken = await store.saveUser({ ...ann, userName: 'bob', version: 3 }, 2, 'anne');

    // Assess
    expect([renamed, stale, taken]).toEqual(['ok', 'conflict', 'duplicate']);
    expect(await store.userIdByName('anne')).toBe('u1');
    expect(await store.userIdByName('ann')).toBeUndefined();
    expect(await store.userIdByName('bob')).toBe('u2');
    expect((await store.getUser('u1'))?.version).toBe(2);
  });

  it('clears a user outbox only at the version it was written with', async () => {
    // Prepare
    const store = await open();
    const outbox = [
      {
        dedupId: 'd1',
        event: {
          id: 'e1',
          type: 'user.offboarded' as const,
          occurredAt: at(1),
          user: { id: 'a'.repeat(32), name: 'ann' },
        },
      },
    ];
    await store.createUser(userFactory('u1', 'ann', { outbox }));

    // Act
    await store.clearUserOutbox('u1', 5);
    const kept = await store.getUser('u1');
    await store.clearUserOutbox('u1', 1);
    const cleared = await store.getUser('u1');

    // Assess
    expect(kept?.outbox).toEqual(outbox);
    expect(cleared?.outbox).toBeUndefined();
    expect(cleared?.version).toBe(2);
  });

  it('keeps groups unique by displayName and lists users and groups by id', async () => {
    // Prepare
    const store = await open();
    await store.createGroup(groupFactory('g2', 'Platform'));
    await store.createUser(userFactory('u2', 'bob'));
    await store.createUser(userFactory('u1', 'ann'));

    // Act
    const duplicate = await store.createGroup(groupFactory('g1', ' platform '));
    const other = await store.createGroup(groupFactory('g1', 'Data'));

    // Assess
    expect([duplicate, other]).toEqual(['duplicate', 'ok']);
    expect((await store.listGroups()).map((group) => group.id)).toEqual(['g1', 'g2']);
    expect((await store.listUsers()).map((user) => user.id)).toEqual(['u1', 'u2']);
    expect(await store.groupIdByName('PLATFORM')).toBe('g2');
  });

  it('renames and removes a group with its name index', async () => {
    // Prepare
    const store = await open();
    const group = groupFactory('g1', 'Platform');
    await store.createGroup(group);

    // Act
    const renamed = await store.saveGroup({ ...group, displayName: 'SRE', version: 2 }, 1, 'Platform');
    const stale = await store.saveGroup({ ...group, version: 2 }, 1, 'SRE');
    await store.removeGroup({ ...group, displayName: 'SRE', version: 2 });

    // Assess
    expect([renamed, stale]).toEqual(['ok', 'conflict']);
    expect(await store.groupIdByName('SRE')).toBeUndefined();
    expect(await store.getGroup('g1')).toBeUndefined();
    expect(await store.createGroup(groupFactory('g9', 'Platform'))).toBe('ok');
  });

  it('moves a membership only to the other state and only forward in time', async () => {
    // Prepare
    const store = await open();

    // Act
    const joined = await store.transitionEdge({ groupId: 'g1', userId: 'u1', member: true, at: at(10) });
    const again = await store.transitionEdge({ groupId: 'g1', userId: 'u1', member: true, at: at(11) });
    const olderLeave = await store.transitionEdge({ groupId: 'g1', userId: 'u1', member: false, at: at(9) });
    const leave = await store.transitionEdge({ groupId: 'g1', userId: 'u1', member: false, at: at(12) });

    // Assess
    expect([joined, again, olderLeave, leave]).toEqual([true, false, false, true]);
    expect((await store.getEdges('g1', ['u1', 'u2'])).get('u1')).toEqual({
      groupId: 'g1',
      userId: 'u1',
      member: false,
      at: at(12),
    });
  });

  it('keeps an edge outbox until it is cleared at its own instant', async () => {
    // Prepare
    const store = await open();
    const outbox = [
      {
        dedupId: 'd1',
        event: {
          id: 'e1',
          type: 'membership.added' as const,
          occurredAt: at(20),
          user: { id: 'a'.repeat(32), name: 'ann' },
          team: 'platform',
        },
      },
    ];
    await store.transitionEdge({ groupId: 'g1', userId: 'u1', member: true, at: at(20), outbox });

    // Act
    await store.clearEdgeOutbox('g1', 'u1', at(19));
    const kept = (await store.listEdges('g1'))[0];
    await store.clearEdgeOutbox('g1', 'u1', at(20));
    const cleared = (await store.listEdges('g1'))[0];

    // Assess
    expect(kept?.outbox).toEqual(outbox);
    expect(cleared).toEqual({ groupId: 'g1', userId: 'u1', member: true, at: at(20) });
  });

  it("indexes a user's groups, newest fact winning, and forgets removed ones", async () => {
    // Prepare
    const store = await open();

    // Act
    await store.setUserGroup('u1', 'g1', true, at(1));
    await store.setUserGroup('u1', 'g2', true, at(1));
    await store.setUserGroup('u1', 'g3', true, at(5));
    await store.setUserGroup('u1', 'g3', false, at(4));
    await store.setUserGroup('u1', 'g2', false, at(6));
    await store.setUserGroup('u2', 'g1', true, at(1));
    await store.removeUserGroup('u1', 'g1');

    // Assess
    expect((await store.userGroupIds('u1')).sort()).toEqual(['g3']);
    expect(await store.userGroupIds('u2')).toEqual(['g1']);
  });

  it('removes a membership entirely', async () => {
    // Prepare
    const store = await open();
    await store.transitionEdge({ groupId: 'g1', userId: 'u1', member: true, at: at(1) });

    // Act
    await store.removeEdge('g1', 'u1');

    // Assess
    expect(await store.listEdges('g1')).toEqual([]);
  });
});

describe('SCIM state keys', () => {
  it('all start with SCIM# (the intake role may touch only those items)', async () => {
    // Prepare
    const tableName = `scim-keys-${++tables}`;
    await ensureTable(dynamo.client, tableName);
    const store = createDynamoScimStore({ client: dynamo.client, tableName });

    // Act
    await store.createUser(userFactory('u1', 'ann'));
    await store.createGroup(groupFactory('g1', 'Platform'));
    await store.transitionEdge({ groupId: 'g1', userId: 'u1', member: true, at: at(1) });
    await store.setUserGroup('u1', 'g1', true, at(1));
    const { Items = [] } = await dynamo.client.send(new ScanCommand({ TableName: tableName }));

    // Assess
    expect(Items).toHaveLength(6);
    for (const item of Items) expect(item.pk?.S?.startsWith(scimKeyPrefix)).toBe(true);
  });
});
