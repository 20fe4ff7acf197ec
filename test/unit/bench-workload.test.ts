import { describe, expect, it } from 'vitest';
import {
  expectedPermissions,
  generateWorld,
  joinFlood,
  permissionDifferences,
  reorganisation,
  type WorkloadSizes,
  warmupEvents,
} from '../../bench/workload.ts';
import { parseEventBody } from '../../lib/core/events.ts';
import { parsePolicy } from '../../lib/core/policy-yaml.ts';
import { parseSeed } from '../../lib/sim/index.ts';

const sizesFactory = (overrides: Partial<WorkloadSizes> = {}): WorkloadSizes => ({
  users: 40,
  teams: 8,
  repos: 30,
  namespaces: 3,
  floodUsers: 10,
  ...overrides,
});

const base = Date.parse('2026-01-01T00:00:00Z');

describe('generateWorld', () => {
  it('gives a seed the simulator accepts and a policy the service accepts', () => {
    // Prepare
    const world = generateWorld(sizesFactory(), 1);

    // Act
    const seed = parseSeed(world.seed);
    const policy = parsePolicy(world.policyYaml, 'bench-policy.yaml');

    // Assess
    expect(seed.users).toHaveLength(40 + 10 + 1);
    expect(Object.keys(policy.teams)).toHaveLength(8);
    expect(policy.protectedUsers).toEqual([world.robot.id]);
  });

  it('is deterministic for a seed and differs between seeds', () => {
    // Act
    const first = generateWorld(sizesFactory(), 7);
    const again = generateWorld(sizesFactory(), 7);
    const other = generateWorld(sizesFactory(), 8);

    // Assess
    expect(again.policyYaml).toBe(first.policyYaml);
    expect(again.seed).toEqual(first.seed);
    expect(other.policyYaml).not.toBe(first.policyYaml);
  });

  it('makes teams share repositories at different levels', () => {
    // Prepare
    const world = generateWorld(sizesFactory({ teams: 20 }), 3);

    // Act
    const levelsByTarget = new Map<string, Set<string>>();
    for (const grants of Object.values(world.teamGrants))
      for (const grant of grants) {
        const key = `${grant.namespace}/${grant.repository ?? ''}`;
        levelsByTarget.set(key, (levelsByTarget.get(key) ?? new Set()).add(grant.permission));
      }

    // Assess
    expect([...levelsByTarget.values()].some((levels) => levels.size > 1)).toBe(true);
  });

  it('seeds exactly the permissions the initial teams give', () => {
    // Prepare
    const world = generateWorld(sizesFactory(), 5);
    const seeded = {
      repos: {} as Record<string, Record<string, 1 | 3 | 7>>,
      namespaces: {} as Record<string, Record<string, 1 | 3 | 7>>,
    };
    for (const ns of world.seed.namespaces) {
      seeded.namespaces[ns.name] = Object.fromEntries(ns.grants.map((g) => [g.userId, g.auth]));
      for (const repo of ns.repositories)
        seeded.repos[`${ns.name}/${repo.name}`] = Object.fromEntries(
          repo.grants.map((g) => [g.userId, g.auth]),
        );
    }

    // Act
    const differences = permissionDifferences(seeded, expectedPermissions(world, world.initialTeams));

    // Assess
    expect(differences.count).toBe(0);
  });
});

describe('event streams', () => {
  it('makes a reorganisation of exactly `count` valid events in time order', () => {
    // Prepare
    const world = generateWorld(sizesFactory(), 2);

    // Act
    const { events } = reorganisation(world, { count: 200, seed: 9, startMs: base, stepMs: 1000 });

    // Assess
    expect(events).toHaveLength(200);
    expect(new Set(events.map((event) => event.type))).toEqual(
      new Set(['membership.added', 'membership.removed', 'user.teams', 'user.offboarded']),
    );
    const now = new Date(base + 10 * 24 * 3600 * 1000);
    for (const event of events) expect(parseEventBody(JSON.stringify(event), now).ok).toBe(true);
    const times = events.map((event) => Date.parse(event.occurredAt));
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });

  it('tracks the teams it leaves every user with', () => {
    // Prepare
    const world = generateWorld(sizesFactory(), 4);

    // Act
    const { events, finalTeams, offboarded } = reorganisation(world, {
      count: 150,
      seed: 2,
      startMs: base,
      stepMs: 1,
    });

    // Assess: replaying the events by hand ends in the same teams.
    const teams = new Map([...world.initialTeams].map(([id, list]) => [id, new Set(list)]));
    for (const event of events) {
      const current = teams.get(event.user.id) ?? new Set<string>();
      if (event.type === 'membership.added') current.add(event.team);
      else if (event.type === 'membership.removed') current.delete(event.team);
      else if (event.type === 'user.teams') teams.set(event.user.id, new Set(event.teams));
      else teams.set(event.user.id, new Set());
      if (event.type === 'membership.added' || event.type === 'membership.removed')
        teams.set(event.user.id, current);
    }
    for (const [id, set] of teams) expect(finalTeams.get(id)).toEqual([...set].sort());
    for (const id of offboarded) expect(finalTeams.get(id)).toEqual([]);
  });

  it('warms up every user once and floods only the flood users', () => {
    // Prepare
    const world = generateWorld(sizesFactory(), 6);

    // Act
    const warmup = warmupEvents(world, base);
    const flood = joinFlood(world, { count: 35, seed: 1, startMs: base, stepMs: 10 });

    // Assess
    expect(warmup.map((event) => event.user.id)).toEqual(world.users.map((user) => user.id));
    const floodIds = new Set(world.floodUsers.map((user) => user.id));
    expect(flood).toHaveLength(35);
    expect(flood.every((event) => event.type === 'membership.added' && floodIds.has(event.user.id))).toBe(
      true,
    );
  });
});
