/**
 * A Huawei Cloud SWR + IAM simulator for tests and the local stack, faithful to
 * shared/docs/swr-api.md, with fault injection.
 *
 * @example
 * import { startSimulator } from '../lib/sim/index.ts';
 * const sim = await startSimulator({ revokeMissing: '204', faults: { error5xxRate: 0.1, seed: 7 } });
 * await sim.close();
 */
export type { RevokeMissing } from './access.ts';
export { SimulatorConfigError, SimulatorError, SimulatorUsageError } from './errors.ts';
export { parseFaults, readFaults } from './fault-options.ts';
export type {
  CallKind,
  FailTarget,
  FaultConfig,
  FaultRule,
  GatewayVariant,
  LyingWrite,
  MalformedVariant,
  QuotaConfig,
} from './faults.ts';
export { defaultFaults, GatewayVariants, LyingWrites, MalformedVariants } from './faults.ts';
export type { SimulatorSeed } from './seed.ts';
export { demoSeedPath, loadSeed, parseSeed } from './seed.ts';
export type { RequestLogEntry, Simulator, SimulatorOptions } from './server.ts';
export { startSimulator } from './server.ts';
export type { PermissionsSnapshot } from './world.ts';
