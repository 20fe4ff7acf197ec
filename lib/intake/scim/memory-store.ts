/**
 * The SCIM state in memory, with the same conditional semantics as the DynamoDB adapter (the
 * contract test runs both): unit tests of the service, and tools that need no table.
 */
import {
  type MemberEdge,
  nameKey,
  type SaveResult,
  type ScimGroupRecord,
  type ScimStore,
  type ScimUserRecord,
} from './state.ts';

const clone = <T>(value: T): T => structuredClone(value);

const edgeKey = (groupId: string, userId: string): string => `${groupId}\u0000${userId}`;

/**
 * @example const store = createMemoryScimStore();
 */
const createMemoryScimStore = (): ScimStore => {
  const users = new Map<string, ScimUserRecord>();
  const userNames = new Map<string, string>();
  const groups = new Map<string, ScimGroupRecord>();
  const groupNames = new Map<string, string>();
  const edges = new Map<string, MemberEdge>();
  const reverse = new Map<string, { member: boolean; at: string }>();

  /** Takes a name for `id` unless a live record of another id holds it. */
  const claim = (
    index: Map<string, string>,
    key: string,
    id: string,
    live: (other: string) => boolean,
  ): boolean => {
    const holder = index.get(key);
    if (holder !== undefined && holder !== id && live(holder)) return false;
    index.set(key, id);
    return true;
  };
  const release = (index: Map<string, string>, key: string, id: string): void => {
    if (index.get(key) === id) index.delete(key);
  };
  const liveUser = (id: string) => users.has(id) && users.get(id)?.deleted !== true;
  const liveGroup = (id: string) => groups.has(id);

  return {
    getUser: async (id) => (users.has(id) ? clone(users.get(id)) : undefined),
    getUsers: async (ids) =>
      new Map(ids.flatMap((id) => (users.has(id) ? [[id, clone(users.get(id) as ScimUserRecord)]] : []))),
    userIdByName: async (userName) => {
      const id = userNames.get(nameKey(userName));
      return id !== undefined && liveUser(id) ? id : undefined;
    },
    listUsers: async () => [...users.values()].map(clone).sort((a, b) => (a.id < b.id ? -1 : 1)),
    createUser: async (record) => {
      if (users.has(record.id)) return 'duplicate';
      if (!claim(userNames, nameKey(record.userName), record.id, liveUser)) return 'duplicate';
      users.set(record.id, clone(record));
      return 'ok';
    },
    saveUser: async (record, expectedVersion, previousUserName): Promise<SaveResult> => {
      const stored = users.get(record.id);
      if (stored === undefined || stored.version !== expectedVersion) return 'conflict';
      const key = nameKey(record.userName);
      if (key !== nameKey(previousUserName)) {
        if (!claim(userNames, key, record.id, liveUser)) return 'duplicate';
        release(userNames, nameKey(previousUserName), record.id);
      }
      users.set(record.id, clone(record));
      return 'ok';
    },
    removeUser: async (record) => {
      users.delete(record.id);
      release(userNames, nameKey(record.userName), record.id);
    },
    clearUserOutbox: async (id, version) => {
      const stored = users.get(id);
      if (stored === undefined || stored.version !== version) return;
      const { outbox: _, ...rest } = stored;
      users.set(id, { ...rest, version: version + 1 });
    },

    getGroup: async (id) => (groups.has(id) ? clone(groups.get(id)) : undefined),
    getGroups: async (ids) =>
      new Map(ids.flatMap((id) => (groups.has(id) ? [[id, clone(groups.get(id) as ScimGroupRecord)]] : []))),
    groupIdByName: async (displayName) => {
      const id = groupNames.get(nameKey(displayName));
      return id !== undefined && liveGroup(id) ? id : undefined;
    },
    listGroups: async () => [...groups.values()].map(clone).sort((a, b) => (a.id < b.id ? -1 : 1)),
    createGroup: async (record) => {
      if (groups.has(record.id)) return 'duplicate';
      if (!claim(groupNames, nameKey(record.displayName), record.id, liveGroup)) return 'duplicate';
      groups.set(record.id, clone(record));
      return 'ok';
    },
    saveGroup: async (record, expectedVersion, previousName): Promise<SaveResult> => {
      const stored = groups.get(record.id);
      if (stored === undefined || stored.version !== expectedVersion) return 'conflict';
      const key = nameKey(record.displayName);
      if (key !== nameKey(previousName)) {
        if (!claim(groupNames, key, record.id, liveGroup)) return 'duplicate';
        release(groupNames, nameKey(previousName), record.id);
      }
      groups.set(record.id, clone(record));
      return 'ok';
    },
    removeGroup: async (record) => {
      groups.delete(record.id);
      release(groupNames, nameKey(record.displayName), record.id);
    },

    getEdges: async (groupId, userIds) =>
      new Map(
        userIds.flatMap((userId) => {
          const edge = edges.get(edgeKey(groupId, userId));
          return edge === undefined ? [] : [[userId, clone(edge)]];
        }),
      ),
    listEdges: async (groupId) =>
      [...edges.values()]
        .filter((edge) => edge.groupId === groupId)
        .map(clone)
        .sort((a, b) => (a.userId < b.userId ? -1 : 1)),
    transitionEdge: async (edge) => {
      const key = edgeKey(edge.groupId, edge.userId);
      const stored = edges.get(key);
      if (
        stored !== undefined &&
        (stored.member === edge.member || Date.parse(stored.at) >= Date.parse(edge.at))
      )
        return false;
      edges.set(key, clone(edge));
      return true;
    },
    clearEdgeOutbox: async (groupId, userId, at) => {
      const key = edgeKey(groupId, userId);
      const stored = edges.get(key);
      if (stored === undefined || stored.at !== at) return;
      const { outbox: _, ...rest } = stored;
      edges.set(key, rest);
    },
    removeEdge: async (groupId, userId) => {
      edges.delete(edgeKey(groupId, userId));
    },
    userGroupIds: async (userId) =>
      [...reverse.entries()]
        .filter(([key, value]) => key.startsWith(`${userId}\u0000`) && value.member)
        .map(([key]) => key.slice(userId.length + 1))
        .sort(),
    setUserGroup: async (userId, groupId, member, at) => {
      const key = edgeKey(userId, groupId);
      const stored = reverse.get(key);
      if (stored !== undefined && Date.parse(stored.at) > Date.parse(at)) return;
      reverse.set(key, { member, at });
    },
    removeUserGroup: async (userId, groupId) => {
      reverse.delete(edgeKey(userId, groupId));
    },
  };
};

export { createMemoryScimStore };
