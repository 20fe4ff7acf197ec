/**
 * The FLOOR of a workload: the fewest SWR write calls any implementation needs to go from one
 * permission state to another, given that SWR takes arrays. Per target, one POST adds every user
 * who had nothing, one PATCH moves every user whose level changed, one DELETE removes every user
 * who lost all access: so the floor is the number of distinct (target, action) pairs in the diff.
 * Reads (GET) are not counted: a floor for them depends on what an implementation may assume.
 */
import type { PermissionMap } from './workload.ts';

interface FloorCount {
  grant: number;
  change: number;
  revoke: number;
  total: number;
}

const emptyFloor = (): FloorCount => ({ grant: 0, change: 0, revoke: 0, total: 0 });

/**
 * @example floorOf(before, after) // { grant: 12, change: 3, revoke: 9, total: 24 }
 */
const floorOf = (before: PermissionMap, after: PermissionMap): FloorCount => {
  const floor = emptyFloor();
  for (const kind of ['repos', 'namespaces'] as const) {
    const keys = new Set([...Object.keys(before[kind]), ...Object.keys(after[kind])]);
    for (const key of keys) {
      const was = before[kind][key] ?? {};
      const now = after[kind][key] ?? {};
      const users = new Set([...Object.keys(was), ...Object.keys(now)]);
      let grant = false;
      let change = false;
      let revoke = false;
      for (const user of users) {
        const from = was[user];
        const to = now[user];
        if (from === to) continue;
        if (from === undefined) grant = true;
        else if (to === undefined) revoke = true;
        else change = true;
      }
      floor.grant += Number(grant);
      floor.change += Number(change);
      floor.revoke += Number(revoke);
    }
  }
  floor.total = floor.grant + floor.change + floor.revoke;
  return floor;
};

/** Sums floors (e.g. one per batch). */
const addFloors = (floors: readonly FloorCount[]): FloorCount =>
  floors.reduce(
    (sum, floor) => ({
      grant: sum.grant + floor.grant,
      change: sum.change + floor.change,
      revoke: sum.revoke + floor.revoke,
      total: sum.total + floor.total,
    }),
    emptyFloor(),
  );

export type { FloorCount };
export { addFloors, floorOf };
